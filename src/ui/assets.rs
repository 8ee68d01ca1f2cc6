//! The UI's static files, embedded in the binary at build time (no build step, no CDN, no external font), each
//! served with a strong ETag (`If-None-Match` answers 304) and, when the client accepts it, gzip-compressed
//! once at first use.

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::OnceLock;

/// One embedded file.
pub struct Asset {
    /// Its name under the UI's prefix (`index.html`, `assets/app.js`).
    pub name: &'static str,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// Every file the UI serves.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "assets/app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "assets/icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("assets/icon.svg"),
    },
];

/// An asset ready to serve: its ETag and, when that is smaller, its gzip form.
pub struct Prepared {
    /// The file.
    pub asset: &'static Asset,
    /// The quoted strong ETag (a prefix of the SHA-256 of the bytes).
    pub etag: String,
    /// The gzip-compressed bytes, when they are smaller than the original.
    pub gzip: Option<Vec<u8>>,
}

fn prepared() -> &'static [Prepared] {
    static ALL: OnceLock<Vec<Prepared>> = OnceLock::new();
    ALL.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(asset.bytes))[..32]);
                let mut enc = GzEncoder::new(Vec::new(), Compression::best());
                let gzip = enc
                    .write_all(asset.bytes)
                    .and_then(|()| enc.finish())
                    .ok()
                    .filter(|z| z.len() < asset.bytes.len());
                Prepared { asset, etag, gzip }
            })
            .collect()
    })
}

/// The asset named `name` (relative to the prefix; empty means `index.html`).
pub fn find(name: &str) -> Option<&'static Prepared> {
    let name = if name.is_empty() { "index.html" } else { name };
    prepared().iter().find(|p| p.asset.name == name)
}

/// Whether an `If-None-Match` value names `etag` (a list, `*`, or weak forms of it).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Whether an `Accept-Encoding` value accepts gzip (and does not refuse it with `q=0`).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|part| {
        let mut it = part.split(';').map(str::trim);
        let coding = it.next().unwrap_or("");
        let refused = it.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn every_asset_is_found_with_a_stable_etag_and_gzip_that_inflates_to_it() {
        for a in ASSETS {
            let p = find(a.name).expect(a.name);
            assert_eq!(p.etag.len(), 34, "{}", p.etag);
            assert_eq!(find(a.name).unwrap().etag, p.etag);
            if let Some(z) = &p.gzip {
                let mut out = Vec::new();
                GzDecoder::new(&z[..]).read_to_end(&mut out).unwrap();
                assert_eq!(out, a.bytes, "{}", a.name);
            }
        }
        assert_eq!(find("").unwrap().asset.name, "index.html");
        for missing in [
            "nope",
            "assets/",
            "../Cargo.toml",
            "assets/../index.html",
            "/index.html",
        ] {
            assert!(find(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn assets_need_no_inline_script_no_eval_and_nothing_remote() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for banned in [
                "http://",
                "https://",
                "eval(",
                "new Function",
                "onclick=",
                "onload=",
                "style=\"",
            ] {
                let hits: Vec<_> = text
                    .match_indices(banned)
                    .filter(|(i, _)| !text[..*i].ends_with("xmlns=\""))
                    .collect();
                assert!(hits.is_empty(), "{} holds {banned:?}", a.name);
            }
        }
        let html = std::str::from_utf8(find("index.html").unwrap().asset.bytes).unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("<style"), "no inline style");
    }

    #[test]
    fn if_none_match_forms() {
        let e = "\"abc\"";
        for (inm, want) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("", false),
        ] {
            assert_eq!(etag_matches(inm, e), want, "{inm}");
        }
    }

    #[test]
    fn accept_encoding_forms() {
        for (ae, want) in [
            ("gzip", true),
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.5", true),
            ("GZIP", true),
            ("*", true),
            ("gzip;q=0", false),
            ("br", false),
            ("", false),
            ("xgzip", false),
        ] {
            assert_eq!(accepts_gzip(ae), want, "{ae}");
        }
    }
}
