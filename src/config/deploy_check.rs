//! deploy/ against the code: every `GATEHOUSE_*` / `REGISTRY_*` variable the deploy files give gatehouse is
//! one that [`super::env`] reads, and the names they mention for other programs are listed here with whose
//! they are. The compose and Caprover files are read per service, so a name set on the UI or on registry:2
//! is not mistaken for one of gatehouse's.

use super::env;
use std::path::{Path, PathBuf};

/// Names in deploy/ that belong to other programs.
const OTHER_PROGRAMS: &[(&str, &str)] = &[
    ("REGISTRY_URL", "joxit docker-registry-ui"),
    ("REGISTRY_TITLE", "joxit docker-registry-ui"),
    (
        "REGISTRY_PUBLIC_URL",
        "a variable the compose files interpolate",
    ),
    (
        "GATEHOUSE_COMMIT",
        "a build argument of deploy/Dockerfile, read by the compiler",
    ),
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every `GATEHOUSE_...` / `REGISTRY_...` token in `text` (header names keep their `-`).
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["GATEHOUSE_", "REGISTRY_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(tail[..end].trim_end_matches('-').to_string());
            }
            rest = &tail[end.max(1)..];
        }
    }
    out
}

/// A service of a compose or Caprover file: its name, whether it runs gatehouse, and its environment keys.
#[derive(Debug)]
struct Service {
    name: String,
    gatehouse: bool,
    env: Vec<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Reads the `services:` block of a compose-style YAML file, line by line (the files keep to plain block
/// mappings: `name:` lines, `environment:` as a mapping or a `- KEY=value` list).
fn services(text: &str) -> Vec<Service> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "services:") else {
        return Vec::new();
    };
    let base = indent(lines[start]);
    let mut out: Vec<Service> = Vec::new();
    let mut service_indent = None;
    let mut env_indent: Option<usize> = None;
    for line in &lines[start + 1..] {
        let n = indent(line);
        if n <= base {
            break;
        }
        let t = line.trim();
        if service_indent.is_none_or(|s| n <= s) {
            service_indent = Some(n);
            env_indent = None;
            out.push(Service {
                name: t.trim_end_matches(':').to_string(),
                gatehouse: false,
                env: Vec::new(),
            });
            continue;
        }
        let service = out.last_mut().expect("a service");
        if env_indent.is_some_and(|e| n <= e) {
            env_indent = None;
        }
        if let Some(_e) = env_indent {
            let entry = t.strip_prefix("- ").unwrap_or(t);
            let key = entry.split([':', '=']).next().unwrap_or("").trim();
            service.env.push(key.trim_matches(['"', '\'']).to_string());
            continue;
        }
        if t == "environment:" {
            env_indent = Some(n);
        } else if let Some(image) = t.strip_prefix("image:") {
            service.gatehouse |= image.contains("gatehouse");
        } else if t.starts_with("dockerfile:") && t.contains("deploy/Dockerfile") {
            service.gatehouse = true;
        }
    }
    out
}

fn compose_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files(&deploy_dir(), &mut all);
    all.into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yml" || e == "yaml")
                && std::fs::read_to_string(p).unwrap().contains("services:")
        })
        .collect()
}

#[test]
fn every_variable_the_deploy_files_give_gatehouse_exists_in_the_code() {
    let composes = compose_files();
    assert!(composes.len() >= 3, "{composes:?}");
    for path in composes {
        let text = std::fs::read_to_string(&path).unwrap();
        let services = services(&text);
        let ours: Vec<&Service> = services.iter().filter(|s| s.gatehouse).collect();
        assert!(
            !ours.is_empty() && ours.iter().all(|s| !s.env.is_empty()),
            "{}: no gatehouse service with an environment found in {services:?}",
            path.display()
        );
        for s in ours {
            for name in &s.env {
                assert!(
                    env::is_known(name),
                    "{}: service {} sets {name}, which gatehouse does not read",
                    path.display(),
                    s.name
                );
            }
        }
    }
}

#[test]
fn every_variable_the_deploy_files_mention_exists_in_the_code_or_is_another_programs() {
    let mut all = Vec::new();
    files(&deploy_dir(), &mut all);
    let mut seen = 0;
    for path in all {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for name in tokens(&text) {
            seen += 1;
            let prefix_of_known = name.ends_with('_')
                && (env::HEADERS_PREFIX.starts_with(&name)
                    || env::VARS.iter().any(|v| v.name.starts_with(&name)));
            assert!(
                env::is_known(&name)
                    || prefix_of_known
                    || OTHER_PROGRAMS.iter().any(|(n, _)| *n == name),
                "{}: mentions {name}, which gatehouse does not read",
                path.display()
            );
        }
    }
    assert!(seen > 20, "only {seen} names found: the scan is broken");
}

#[test]
fn caprover_app_trusts_its_nginx_for_the_guard() {
    let path = deploy_dir().join("caprover/gatehouse-one-click.yml");
    let services = services(&std::fs::read_to_string(&path).unwrap());
    let ours = services
        .iter()
        .find(|s| s.gatehouse)
        .expect("the gatehouse app");
    assert!(
        ours.env.iter().any(|n| n == "GATEHOUSE_TRUSTED_PROXIES"),
        "behind Caprover's nginx every client would share one guard bucket: {:?}",
        ours.env
    );
}

#[test]
fn deploy_docs_do_not_say_env_vars_are_missing() {
    let mut all = Vec::new();
    files(&deploy_dir(), &mut all);
    for path in all {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for claim in [
            "no environment variable",
            "no environment variables",
            "keys only",
            "set in the file only",
        ] {
            assert!(
                !flat.to_lowercase().contains(claim),
                "{} says {claim:?}",
                path.display()
            );
        }
    }
}

#[test]
fn the_service_reader_understands_both_environment_forms() {
    let text = "x: 1\nservices:\n  app:\n    image: gatehouse:local\n    environment:\n      A_B: c\n      \
                # C: d\n    ports:\n      - \"1:1\"\n  ui:\n    image: other\n    environment:\n      - X=1\n";
    let s = services(text);
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s[0].gatehouse && s[0].env == ["A_B"], "{s:?}");
    assert!(!s[1].gatehouse && s[1].env == ["X"], "{s:?}");
    assert_eq!(
        tokens("a REGISTRY_HTTP_HEADERS_<Name> and `GATEHOUSE_LOG`, XREGISTRY_NO"),
        vec!["GATEHOUSE_LOG", "REGISTRY_HTTP_HEADERS_"]
    );
}
