//! `[gc]`: the collector's settings (`GATEHOUSE_GC_INTERVAL`, `GATEHOUSE_GC_GRACE`,
//! `GATEHOUSE_GC_DELETE_UNTAGGED`, `GATEHOUSE_GC_BUDGET`), validated into [`GcSettings`].

use crate::config::values::parse_duration;
use crate::settings::Invalid;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The grace of online runs when none is set: the time a client may take between a blob upload and the
/// manifest put that references it.
pub const DEFAULT_ONLINE_GRACE: Duration = Duration::from_secs(3600);

/// `[gc]` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcSection {
    /// How often the server collects (`10m`, `24h`); empty or `0` = never.
    pub interval: String,
    /// Blobs and manifests younger than this are never collected; empty = 1h online, none offline.
    pub grace: String,
    /// Whether runs also delete manifests no tag reaches.
    pub delete_untagged: bool,
    /// The share of the time an online run may work, in percent (`25%` or `25`, 1–100); empty = 25.
    pub budget: String,
    /// `[gc.upload_purging]`: distribution's `storage.maintenance.uploadpurging`.
    pub upload_purging: PurgingSection,
}

/// `[gc.upload_purging]`, with distribution's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurgingSection {
    /// Whether abandoned uploads are removed.
    pub enabled: bool,
    /// How long an upload may receive nothing before it is abandoned.
    pub age: String,
    /// How often the server looks.
    pub interval: String,
    /// Log what would be removed; remove nothing.
    pub dryrun: bool,
}

impl Default for PurgingSection {
    fn default() -> Self {
        PurgingSection {
            enabled: true,
            age: "168h".into(),
            interval: "24h".into(),
            dryrun: false,
        }
    }
}

/// Validated upload purging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purging {
    /// The idle time after which an upload is removed.
    pub age: Duration,
    /// How often.
    pub interval: Duration,
    /// Report only.
    pub dry_run: bool,
}

/// Validated `[gc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSettings {
    /// The online interval, `None` when online GC is off.
    pub interval: Option<Duration>,
    /// The grace when one was set.
    pub grace: Option<Duration>,
    /// Whether untagged manifests are deleted.
    pub delete_untagged: bool,
    /// The share of the time an online run may work, in percent (1–100; [`super::budget`]).
    pub budget: u8,
    /// Upload purging, `None` when disabled.
    pub purging: Option<Purging>,
    /// `[[retention]]` (validated by [`super::retention::parse`]; none by default).
    pub retention: Vec<super::retention::Rule>,
}

impl GcSettings {
    /// The grace of an online run.
    pub fn online_grace(&self) -> Duration {
        self.grace.unwrap_or(DEFAULT_ONLINE_GRACE)
    }

    /// The grace of an offline `gatehouse gc` (the server is stopped): none unless set.
    pub fn offline_grace(&self) -> Duration {
        self.grace.unwrap_or(Duration::ZERO)
    }
}

/// A budget in percent: `25%` or `25`, from 1 to 100; empty is the default.
fn parse_budget(v: &str) -> Result<u8, Invalid> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(super::budget::DEFAULT_BUDGET_PERCENT);
    }
    let digits = v.strip_suffix('%').unwrap_or(v).trim_end();
    match digits.parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(Invalid::new(
            "budget",
            format!("{v:?}: give a percentage from 1 to 100, like 25%"),
        )),
    }
}

/// Validates `[gc]`; the warnings name what cannot take effect.
pub fn validate(s: &GcSection) -> Result<(GcSettings, Vec<String>), Invalid> {
    let duration = |field: &'static str, v: &str| -> Result<Option<Duration>, Invalid> {
        if v.trim().is_empty() {
            return Ok(None);
        }
        parse_duration(v)
            .map(Some)
            .map_err(|p| Invalid::new(field, p))
    };
    let interval = duration("interval", &s.interval)?.filter(|d| !d.is_zero());
    let grace = duration("grace", &s.grace)?;
    let budget = parse_budget(&s.budget)?;
    let p = &s.upload_purging;
    let required = |field: &'static str, v: &str| {
        duration(field, v)?
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Invalid::new(field, "must be a duration above zero"))
    };
    let purging = if p.enabled {
        Some(Purging {
            age: required("upload_purging.age", &p.age)?,
            interval: required("upload_purging.interval", &p.interval)?,
            dry_run: p.dryrun,
        })
    } else {
        None
    };
    let warnings = Vec::new();
    Ok((
        GcSettings {
            interval,
            grace,
            delete_untagged: s.delete_untagged,
            budget,
            purging,
            retention: Vec::new(),
        },
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_table() {
        let section = |interval: &str, grace: &str| GcSection {
            interval: interval.into(),
            grace: grace.into(),
            delete_untagged: false,
            budget: String::new(),
            upload_purging: PurgingSection::default(),
        };
        for (interval, grace, want_interval, want_grace) in [
            ("", "", None, None),
            ("0", "", None, None),
            ("0s", "0", None, Some(Duration::ZERO)),
            (
                "10m",
                "2s",
                Some(Duration::from_secs(600)),
                Some(Duration::from_secs(2)),
            ),
            (
                "24h",
                "1h30m",
                Some(Duration::from_secs(86_400)),
                Some(Duration::from_secs(5400)),
            ),
        ] {
            let (s, warnings) = validate(&section(interval, grace)).unwrap();
            assert_eq!(
                (s.interval, s.grace),
                (want_interval, want_grace),
                "{interval} {grace}"
            );
            assert_eq!(warnings, Vec::<String>::new());
        }
        for (interval, grace, field) in [
            ("often", "", "interval"),
            ("-1s", "", "interval"),
            ("", "1 hour", "grace"),
            ("", "5x", "grace"),
        ] {
            assert_eq!(
                validate(&section(interval, grace)).unwrap_err().field,
                field
            );
        }
        let both = GcSection {
            delete_untagged: true,
            ..section("1h", "")
        };
        let (online, warnings) = validate(&both).unwrap();
        assert!(
            online.delete_untagged && warnings.is_empty(),
            "online runs apply it too"
        );
        let purging = |age: &str, interval: &str| GcSection {
            upload_purging: PurgingSection {
                age: age.into(),
                interval: interval.into(),
                ..PurgingSection::default()
            },
            ..GcSection::default()
        };
        for (age, interval, field) in [
            ("", "24h", "upload_purging.age"),
            ("0s", "24h", "upload_purging.age"),
            ("168h", "soon", "upload_purging.interval"),
        ] {
            assert_eq!(validate(&purging(age, interval)).unwrap_err().field, field);
        }
        let off = GcSection {
            upload_purging: PurgingSection {
                enabled: false,
                age: String::new(),
                ..PurgingSection::default()
            },
            ..GcSection::default()
        };
        assert_eq!(validate(&off).unwrap().0.purging, None);
        let unset = validate(&GcSection::default()).unwrap().0;
        assert_eq!(
            unset.purging,
            Some(Purging {
                age: Duration::from_secs(168 * 3600),
                interval: Duration::from_secs(24 * 3600),
                dry_run: false
            }),
            "distribution's defaults"
        );
        assert_eq!(unset.online_grace(), DEFAULT_ONLINE_GRACE);
        assert_eq!(unset.budget, super::super::budget::DEFAULT_BUDGET_PERCENT);
        assert_eq!(unset.offline_grace(), Duration::ZERO);
    }

    #[test]
    fn budgets_are_percentages_from_1_to_100() {
        let budget = |v: &str| {
            validate(&GcSection {
                budget: v.into(),
                ..GcSection::default()
            })
            .map(|(s, _)| s.budget)
            .map_err(|e| e.field)
        };
        for (v, want) in [
            ("", Ok(25)),
            ("  ", Ok(25)),
            ("25%", Ok(25)),
            ("25", Ok(25)),
            ("1", Ok(1)),
            ("100%", Ok(100)),
            (" 50 % ", Ok(50)),
            ("0", Err("budget")),
            ("0%", Err("budget")),
            ("101", Err("budget")),
            ("-5", Err("budget")),
            ("+5", Err("budget")),
            ("0.5", Err("budget")),
            ("25%%", Err("budget")),
            ("quarter", Err("budget")),
            ("300", Err("budget")),
        ] {
            assert_eq!(budget(v), want, "{v:?}");
        }
    }
}
