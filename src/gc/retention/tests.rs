//! Retention as a table: rules, tags with push times, the tags that go; and the config errors.

use super::*;

fn rules(toml_text: &str) -> Vec<Rule> {
    #[derive(serde::Deserialize)]
    struct F {
        retention: Vec<toml::Table>,
    }
    let f: F = toml::from_str(toml_text).unwrap();
    parse(&f.retention).unwrap()
}

fn error(toml_text: &str) -> RuleError {
    #[derive(serde::Deserialize)]
    struct F {
        retention: Vec<toml::Table>,
    }
    let f: F = toml::from_str(toml_text).unwrap();
    parse(&f.retention).unwrap_err()
}

/// Tags `name@minutes-after-epoch`.
fn tags(spec: &[(&str, u64)]) -> Vec<(Tag, SystemTime)> {
    spec.iter()
        .map(|(t, m)| {
            (
                Tag::parse(t).unwrap(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(m * 60),
            )
        })
        .collect()
}

fn names(v: Vec<Tag>) -> Vec<String> {
    v.into_iter().map(|t| t.as_str().to_string()).collect()
}

/// (what, rules, repository, tags with push minutes, tags that go).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, u64)],
    &'a [&'a str],
);

#[test]
fn retention_table() {
    let five = [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)];
    let cases: &[Case] = &[
        (
            "keep_last keeps the newest by push time, not by name",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 2"#,
            "app",
            &[("z", 1), ("y", 9), ("a", 2), ("m", 8)],
            &["a", "z"],
        ),
        (
            "more kept than there are tags: nothing goes",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 10"#,
            "app",
            &five,
            &[],
        ),
        (
            "keep_tags alone deletes every other tag",
            r#"[[retention]]
               repositories = ["app"]
               keep_tags = ["v*", "latest"]"#,
            "app",
            &[("v1", 1), ("latest", 2), ("dev", 3), ("pr-7", 4)],
            &["dev", "pr-7"],
        ),
        (
            "keep_last and keep_tags in one rule: a tag stays by either",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 1
               keep_tags = ["v?"]"#,
            "app",
            &[("v1", 1), ("v22", 2), ("dev", 3), ("new", 4)],
            &["dev", "v22"],
        ),
        (
            "a repository no rule matches keeps every tag",
            r#"[[retention]]
               repositories = ["team/*"]
               keep_last = 1"#,
            "team/app/sub",
            &five,
            &[],
        ),
        (
            "** crosses slashes",
            r#"[[retention]]
               repositories = ["team/**"]
               keep_last = 4"#,
            "team/app/sub",
            &five,
            &["a"],
        ),
        (
            "two matching rules: a tag goes only when both would delete it",
            r#"[[retention]]
               repositories = ["**"]
               keep_last = 1
               [[retention]]
               repositories = ["app"]
               keep_tags = ["a", "c"]"#,
            "app",
            &five,
            &["b", "d"],
        ),
        (
            "two matching rules: the larger keep_last wins, whatever the order",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 1
               [[retention]]
               repositories = ["a*"]
               keep_last = 3"#,
            "app",
            &five,
            &["a", "b"],
        ),
        (
            "a rule about untagged manifests only has no say on tags",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 1
               [[retention]]
               repositories = ["**"]
               untagged_older_than = "24h""#,
            "app",
            &five,
            &["a", "b", "c", "d"],
        ),
        (
            "only a rule about untagged manifests: every tag stays",
            r#"[[retention]]
               repositories = ["**"]
               untagged_older_than = "1h""#,
            "app",
            &five,
            &[],
        ),
        (
            "equal push times: ties broken by name, the same way every run",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 2"#,
            "app",
            &[("c", 5), ("a", 5), ("b", 5), ("d", 1)],
            &["c", "d"],
        ),
        (
            "no tags at all",
            r#"[[retention]]
               repositories = ["app"]
               keep_last = 1"#,
            "app",
            &[],
            &[],
        ),
    ];
    for (what, text, repo, spec, want) in cases {
        let got = names(doomed_tags(&rules(text), repo, &tags(spec), |_| false));
        assert_eq!(got, *want, "{what}");
    }
}

#[test]
fn tags_pushed_within_the_grace_stay_but_still_count_for_keep_last() {
    let r = rules(
        r#"[[retention]]
           repositories = ["app"]
           keep_last = 2"#,
    );
    let t = tags(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
    let young = |at: SystemTime| at >= SystemTime::UNIX_EPOCH + Duration::from_secs(4 * 60);
    // d is young (stays), c is the second newest (stays); a and b go.
    assert_eq!(names(doomed_tags(&r, "app", &t, young)), ["a", "b"]);
    let all_young = |_| true;
    assert!(doomed_tags(&r, "app", &t, all_young).is_empty());
}

#[test]
fn untagged_age_is_the_longest_of_the_matching_rules() {
    let r = rules(
        r#"[[retention]]
           repositories = ["**"]
           untagged_older_than = "1h"
           [[retention]]
           repositories = ["team/*"]
           untagged_older_than = "48h"
           [[retention]]
           repositories = ["team/*"]
           keep_last = 3"#,
    );
    assert_eq!(
        untagged_after(&r, "team/app"),
        Some(Duration::from_secs(48 * 3600))
    );
    assert_eq!(untagged_after(&r, "other"), Some(Duration::from_secs(3600)));
    let tags_only = rules(
        r#"[[retention]]
           repositories = ["**"]
           keep_last = 3"#,
    );
    assert_eq!(untagged_after(&tags_only, "app"), None);
    assert_eq!(untagged_after(&[], "app"), None);
}

#[test]
fn a_bad_rule_is_an_error_naming_its_index_and_key() {
    let ok = "[[retention]]\nrepositories = [\"**\"]\nkeep_last = 1\n";
    for (second, key, says) in [
        ("", "retention[1]", "is empty"),
        ("repositories = [\"**\"]", "retention[1]", "removes nothing"),
        ("keep_last = 2", "retention[1].repositories", "missing"),
        (
            "repositories = [\"**\"]\nkeep_lats = 2",
            "retention[1].keep_lats",
            "unknown key",
        ),
        (
            "repositories = []\nkeep_last = 2",
            "retention[1].repositories",
            "empty",
        ),
        (
            "repositories = \"**\"\nkeep_last = 2",
            "retention[1].repositories",
            "list",
        ),
        (
            "repositories = [\"Team/*\"]\nkeep_last = 2",
            "retention[1].repositories",
            "never match",
        ),
        (
            "repositories = [\"a b\"]\nkeep_last = 2",
            "retention[1].repositories",
            "never match",
        ),
        (
            "repositories = [\"[ab]\"]\nkeep_last = 2",
            "retention[1].repositories",
            "never match",
        ),
        (
            "repositories = [\"***\"]\nkeep_last = 2",
            "retention[1].repositories",
            "not a glob",
        ),
        (
            "repositories = [\"team//x\"]\nkeep_last = 2",
            "retention[1].repositories",
            "not a glob",
        ),
        (
            "repositories = [\"\"]\nkeep_last = 2",
            "retention[1].repositories",
            "empty glob",
        ),
        (
            "repositories = [7]\nkeep_last = 2",
            "retention[1].repositories",
            "not a string",
        ),
        (
            "repositories = [\"**\"]\nkeep_last = 0",
            "retention[1].keep_last",
            "at least 1",
        ),
        (
            "repositories = [\"**\"]\nkeep_last = -3",
            "retention[1].keep_last",
            "at least 1",
        ),
        (
            "repositories = [\"**\"]\nkeep_last = \"5\"",
            "retention[1].keep_last",
            "at least 1",
        ),
        (
            "repositories = [\"**\"]\nkeep_tags = [\"v/1\"]",
            "retention[1].keep_tags",
            "never match",
        ),
        (
            "repositories = [\"**\"]\nkeep_tags = []",
            "retention[1].keep_tags",
            "empty",
        ),
        (
            "repositories = [\"**\"]\nuntagged_older_than = \"a week\"",
            "retention[1].untagged_older_than",
            "not a duration",
        ),
        (
            "repositories = [\"**\"]\nuntagged_older_than = 3600",
            "retention[1].untagged_older_than",
            "not a duration",
        ),
    ] {
        let text = format!("{ok}[[retention]]\n{second}\n");
        let e = error(&text);
        assert_eq!(e.key, key, "{second}");
        assert!(e.problem.contains(says), "{second}: {}", e.problem);
        assert!(e.to_string().starts_with(&format!("config key {key}")));
    }
}

#[test]
fn the_config_file_carries_the_rules_and_a_bad_one_names_its_index() {
    use crate::config::{render, schema::FileConfig, validate, ConfigError};
    let text = r#"
[[retention]]
repositories = ["team/**"]
keep_last = 5

[[retention]]
repositories = ["**"]
untagged_older_than = "720h"
"#;
    let file: FileConfig = toml::from_str(text).unwrap();
    let shown = render(&file);
    let again: FileConfig = toml::from_str(&shown).unwrap();
    assert_eq!(
        again.retention, file.retention,
        "check-config shows the rules: {shown}"
    );
    let config = validate(file).unwrap();
    assert_eq!(config.gc.retention.len(), 2);
    assert_eq!(
        config.gc.retention[1].untagged_older_than,
        Some(Duration::from_secs(720 * 3600))
    );
    assert!(
        validate(FileConfig::default())
            .unwrap()
            .gc
            .retention
            .is_empty(),
        "off unless configured"
    );
    let bad: FileConfig = toml::from_str(&format!(
        "{text}\n[[retention]]\nrepositories = [\"**\"]\nkeep = 1\n"
    ))
    .unwrap();
    match validate(bad) {
        Err(ConfigError::Invalid { key, problem }) => {
            assert_eq!(key, "retention[2].keep");
            assert!(problem.contains("unknown key"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
}
