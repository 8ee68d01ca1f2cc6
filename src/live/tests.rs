//! Reloads: which sections apply and which wait for a restart, the authenticator kept or rebuilt, and a
//! config that cannot be put in force leaving the running one whole.

use super::*;
use crate::config::validate;
use std::sync::atomic::{AtomicUsize, Ordering};

fn config(text: &str) -> Config {
    validate(toml::from_str(text).expect("test TOML parses")).expect("test config validates")
}

/// A config with htpasswd auth on `file` and `extra` appended.
fn with_file(file: &Path, extra: &str) -> Config {
    config(&format!(
        "[auth]\nmode = \"htpasswd\"\nhtpasswd = {:?}\n{extra}",
        file.display().to_string()
    ))
}

fn htpasswd(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    // bcrypt of "pw" at cost 4.
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    path
}

fn live(config: Config) -> LiveConfig {
    let auth = match config.auth.mode {
        AuthMode::None => None,
        AuthMode::Htpasswd => Some(Arc::new(
            Authenticator::open(&config.auth, config.guard.as_ref()).unwrap(),
        )),
    };
    LiveConfig::new(Live::new(Arc::new(config), auth), None, None)
}

#[test]
fn sections_split_into_applied_and_waiting_for_a_restart() {
    let base = "[server]\nlisten = \"127.0.0.1:5000\"\n[auth]\nmode = \"none\"\n";
    let cases: [(&str, &[&str], &[&str]); 7] = [
        ("", &[], &[]),
        (
            "[cors]\nallow_origins = [\"https://ui.example\"]\n",
            &["cors"],
            &[],
        ),
        (
            "[headers]\nX-Frame-Options = [\"DENY\"]\n",
            &["headers"],
            &[],
        ),
        ("[log]\nlevel = \"debug\"\n", &["log.filter"], &[]),
        ("[log]\nformat = \"json\"\n", &[], &["log.json"]),
        ("[storage]\nroot = \"/elsewhere\"\n", &[], &["storage"]),
        ("[server]\nthreads = 7\n", &[], &["server.threads"]),
    ];
    let old = config(base);
    for (extra, applied, restart) in cases {
        let text = if extra.starts_with("[server]") {
            extra.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:5000\"\n")
                + "[auth]\nmode = \"none\"\n"
        } else {
            format!("{base}{extra}")
        };
        let got = changes(&old, &config(&text));
        assert_eq!(got.applied, applied, "{extra}");
        assert_eq!(got.need_restart, restart, "{extra}");
    }
}

#[test]
fn a_realm_change_keeps_the_authenticator_and_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), "htpasswd");
    let live = live(with_file(&file, ""));
    let before = live.snapshot().auth.clone().unwrap();
    let mut next = with_file(&file, "");
    next.auth.realm = "elsewhere".into();
    let applied = live.apply(next).unwrap();
    assert_eq!(applied.applied, ["auth"]);
    let after = live.snapshot();
    assert_eq!(after.config.auth.realm, "elsewhere");
    assert!(Arc::ptr_eq(&before, after.auth.as_ref().unwrap()));
}

#[test]
fn a_new_htpasswd_path_builds_a_new_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let first = htpasswd(dir.path(), "one");
    let second = htpasswd(dir.path(), "two");
    let live = live(with_file(&first, ""));
    let before = live.snapshot().auth.clone().unwrap();
    live.apply(with_file(&second, "")).unwrap();
    let after = live.snapshot().auth.clone().unwrap();
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(after.path(), second.as_path());
}

#[test]
fn an_htpasswd_file_that_does_not_load_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let good = htpasswd(dir.path(), "good");
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, [0u8, 159, 146, 150, 0, 1]).unwrap();
    let live = live(with_file(&good, ""));
    let mut next = with_file(&garbage, "");
    next.auth.realm = "changed".into();
    assert!(live.apply(next).is_err());
    let now = live.snapshot();
    assert_eq!(now.auth.as_ref().unwrap().path(), good.as_path());
    assert_ne!(now.config.auth.realm, "changed");
}

#[test]
fn settings_that_need_a_restart_keep_their_running_values() {
    let live = live(config("[auth]\nmode = \"none\"\n[server]\nthreads = 3\n"));
    let next = config(
        "[auth]\nmode = \"none\"\n[server]\nthreads = 9\n[cors]\nallow_origins = [\"https://x.example\"]\n",
    );
    let applied = live.apply(next).unwrap();
    assert_eq!(applied.applied, ["cors"]);
    assert_eq!(applied.need_restart, ["server.threads"]);
    let now = live.snapshot();
    assert_eq!(now.config.threads, 3, "the running value stays");
    assert_eq!(now.config.cors.allow_origins.len(), 1);
}

#[test]
fn a_bad_log_filter_is_refused_before_anything_is_swapped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let set: LogFilter = Box::new(move |f: &str| {
        seen.fetch_add(1, Ordering::Relaxed);
        if f == "debug" {
            Err("refused by the test".into())
        } else {
            Ok(())
        }
    });
    let first = config("[auth]\nmode = \"none\"\n");
    let live = LiveConfig::new(Live::new(Arc::new(first), None), None, Some(set));
    let next = config("[auth]\nmode = \"none\"\n[log]\nlevel = \"debug\"\n");
    assert!(matches!(
        live.apply(next),
        Err(ReloadError::LogFilter { .. })
    ));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(live.snapshot().config.log.filter, "info");
}
