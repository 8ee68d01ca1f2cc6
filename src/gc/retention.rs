//! `[[retention]]`: which tags and untagged manifests the collector removes, by repository glob.
//!
//! A rule names `repositories` (globs, as in `[[access]]`: `*` within one path component, `**` across) and
//! any of: `keep_last = N` (the N most recently pushed tags stay; the push time is the modification time of
//! the tag's `current/link`, as in distribution), `keep_tags = ["v*", "latest"]` (tags matching a glob stay),
//! `untagged_older_than = "720h"` (manifests no tag reaches, pushed longer ago than that, are deleted).
//! A rule with `keep_last` or `keep_tags` deletes every other tag of the repositories it matches.
//!
//! Several rules may match one repository; the safe reading wins: a tag is deleted only when every matching
//! rule that speaks about tags (has `keep_last` or `keep_tags`) would delete it, so any rule can keep a tag;
//! untagged manifests go only after the longest `untagged_older_than` of the matching rules. Rules that say
//! nothing about tags (or about untagged manifests) have no say there. Tags pushed within the grace are never
//! deleted. Without rules nothing is removed by retention.

use super::layout::Inventory;
use super::{GcError, Options, Report};
use crate::authz::glob;
use crate::config::values::parse_duration;
use crate::names::Tag;
use crate::storage::driver::Driver;
use crate::storage::paths;
use std::time::{Duration, SystemTime};

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its position in the file (`retention[i]`), for messages.
    pub index: usize,
    /// Repository globs.
    pub repositories: Vec<String>,
    /// How many of the most recently pushed tags stay.
    pub keep_last: Option<usize>,
    /// Tag globs that stay.
    pub keep_tags: Vec<String>,
    /// Untagged manifests pushed longer ago than this are deleted.
    pub untagged_older_than: Option<Duration>,
}

impl Rule {
    /// Whether the rule applies to `repo`.
    pub fn matches(&self, repo: &str) -> bool {
        self.repositories.iter().any(|g| glob(g, repo))
    }

    /// Whether the rule decides about tags.
    fn speaks_about_tags(&self) -> bool {
        self.keep_last.is_some() || !self.keep_tags.is_empty()
    }
}

/// A rule that cannot take effect: the key (`retention[2].keep_last`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key {key}: {problem}")]
pub struct RuleError {
    /// `retention[<index>]` or `retention[<index>].<key>`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

const KEYS: [&str; 4] = [
    "repositories",
    "keep_last",
    "keep_tags",
    "untagged_older_than",
];

/// Characters a repository glob may hold besides `*` and `?` (those of repository names).
fn repository_glob_problem(g: &str) -> Option<String> {
    if g.is_empty() {
        return Some("an empty glob matches no repository".into());
    }
    if let Some(c) = g
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/' | '*' | '?'))
    {
        return Some(format!(
            "`{g}`: {c:?} can never match a repository name (lowercase letters, digits, . _ - / and the \
             wildcards * ** ?)"
        ));
    }
    if g.contains("***") || g.starts_with('/') || g.ends_with('/') || g.contains("//") {
        return Some(format!("`{g}` is not a glob gatehouse understands"));
    }
    None
}

/// Characters a tag glob may hold besides `*` and `?` (those of tags).
fn tag_glob_problem(g: &str) -> Option<String> {
    if g.is_empty() {
        return Some("an empty glob matches no tag".into());
    }
    if let Some(c) = g
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?')))
    {
        return Some(format!(
            "`{g}`: {c:?} can never match a tag (letters, digits, . _ - and the wildcards * ?)"
        ));
    }
    if g.len() > 128 {
        return Some(format!("`{g}` is longer than any tag"));
    }
    None
}

fn globs(
    index: usize,
    key: &str,
    v: &toml::Value,
    problem: fn(&str) -> Option<String>,
) -> Result<Vec<String>, RuleError> {
    let err = |problem: String| RuleError {
        key: format!("retention[{index}].{key}"),
        problem,
    };
    let list = v
        .as_array()
        .ok_or_else(|| err("must be a list of globs".into()))?;
    if list.is_empty() {
        return Err(err("is empty".into()));
    }
    list.iter()
        .map(|g| {
            let g = g
                .as_str()
                .ok_or_else(|| err(format!("{g} is not a string")))?;
            match problem(g) {
                Some(p) => Err(err(p)),
                None => Ok(g.to_string()),
            }
        })
        .collect()
}

/// Validates the `[[retention]]` tables as written.
pub fn parse(tables: &[toml::Table]) -> Result<Vec<Rule>, RuleError> {
    tables
        .iter()
        .enumerate()
        .map(|(index, t)| parse_one(index, t))
        .collect()
}

fn parse_one(index: usize, t: &toml::Table) -> Result<Rule, RuleError> {
    let err = |key: &str, problem: String| RuleError {
        key: format!("retention[{index}].{key}"),
        problem,
    };
    if t.is_empty() {
        return Err(RuleError {
            key: format!("retention[{index}]"),
            problem: "the rule is empty: it needs repositories and keep_last, keep_tags or \
                      untagged_older_than"
                .into(),
        });
    }
    if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(
            k,
            format!("unknown key (the keys are {})", KEYS.join(", ")),
        ));
    }
    let repositories = match t.get("repositories") {
        Some(v) => globs(index, "repositories", v, repository_glob_problem)?,
        None => {
            return Err(err(
                "repositories",
                "is missing: a rule names the repositories it applies to (`[\"**\"]` for all)"
                    .into(),
            ))
        }
    };
    let keep_last = match t.get("keep_last") {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 1 => Some(usize::try_from(*n).unwrap_or(usize::MAX)),
        Some(v) => {
            return Err(err(
                "keep_last",
                format!("{v} is not a number of tags of at least 1"),
            ))
        }
    };
    let keep_tags = match t.get("keep_tags") {
        None => Vec::new(),
        Some(v) => globs(index, "keep_tags", v, tag_glob_problem)?,
    };
    let untagged_older_than = match t.get("untagged_older_than") {
        None => None,
        Some(toml::Value::String(s)) => {
            Some(parse_duration(s).map_err(|p| err("untagged_older_than", p))?)
        }
        Some(v) => {
            return Err(err(
                "untagged_older_than",
                format!("{v} is not a duration such as \"720h\""),
            ))
        }
    };
    let rule = Rule {
        index,
        repositories,
        keep_last,
        keep_tags,
        untagged_older_than,
    };
    if !rule.speaks_about_tags() && rule.untagged_older_than.is_none() {
        return Err(RuleError {
            key: format!("retention[{index}]"),
            problem: "the rule removes nothing: set keep_last, keep_tags or untagged_older_than"
                .into(),
        });
    }
    Ok(rule)
}

/// The tags of `repo` the rules delete, from its tags and their push times; `young` says which push times are
/// within the grace (those tags stay). Pure: the unit of the retention tests.
pub fn doomed_tags(
    rules: &[Rule],
    repo: &str,
    tags: &[(Tag, SystemTime)],
    young: impl Fn(SystemTime) -> bool,
) -> Vec<Tag> {
    let voters: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.speaks_about_tags() && r.matches(repo))
        .collect();
    if voters.is_empty() {
        return Vec::new();
    }
    // Newest first; equal times by name, so a run decides the same way twice.
    let mut by_age: Vec<&(Tag, SystemTime)> = tags.iter().collect();
    by_age.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
    let kept_by = |r: &Rule, rank: usize, tag: &Tag| {
        r.keep_last.is_some_and(|n| rank < n) || r.keep_tags.iter().any(|g| glob(g, tag.as_str()))
    };
    let mut doomed: Vec<Tag> = by_age
        .iter()
        .enumerate()
        .filter(|(rank, (tag, pushed))| {
            !young(*pushed) && !voters.iter().any(|r| kept_by(r, *rank, tag))
        })
        .map(|(_, (tag, _))| tag.clone())
        .collect();
    doomed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    doomed
}

/// How old an untagged manifest of `repo` must be before the rules delete it: the longest
/// `untagged_older_than` of the matching rules, `None` when no matching rule sets one.
pub fn untagged_after(rules: &[Rule], repo: &str) -> Option<Duration> {
    rules
        .iter()
        .filter(|r| r.matches(repo))
        .filter_map(|r| r.untagged_older_than)
        .max()
}

/// Deletes the tags the rules doom (with `dry_run`, only reports them) and takes them out of `inv`, so the
/// mark that follows no longer starts from them. A tag whose link was rewritten since the walk (pushed again
/// meanwhile) stays.
pub async fn apply_tags(
    driver: &dyn Driver,
    inv: &mut Inventory,
    opts: &Options,
    report: &mut Report,
) -> Result<(), GcError> {
    if opts.retention.is_empty() {
        return Ok(());
    }
    for (name, repo) in inv.iter_mut() {
        let times: Vec<(Tag, SystemTime)> = repo
            .tags
            .iter()
            .map(|t| (t.tag.clone(), t.modified))
            .collect();
        let doomed = doomed_tags(&opts.retention, name.as_str(), &times, |m| opts.is_young(m));
        for tag in doomed {
            let Some(link) = repo.tags.iter().find(|t| t.tag == tag) else {
                continue;
            };
            if !opts.dry_run {
                match driver.stat(&link.key).await? {
                    Some(m) if m.modified == link.modified => {
                        driver.delete(&paths::tag_dir(name, &tag)).await?;
                    }
                    _ => {
                        tracing::info!(repository = %name, tag = %tag, "gc: retention: the tag was pushed again during the run; it stays");
                        continue;
                    }
                }
            }
            tracing::info!(repository = %name, tag = %tag, dry_run = opts.dry_run, "gc: retention: tag deleted");
            repo.tags.retain(|t| t.tag != tag);
            repo.tag_index.retain(|(t, _)| *t != tag);
            report.tags_deleted.push((name.clone(), tag));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
