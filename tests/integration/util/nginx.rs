//! A real nginx (Debian's `nginx`) as a gzip-compressing reverse proxy in front of another server on
//! loopback: an upstream that answers `Content-Encoding: gzip` when asked, as registries behind nginx,
//! Harbor or a CDN do (distribution 2.8.2 itself never compresses). Own prefix dir, daemon off, killed on drop.

use std::fs;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::net;
use super::process::{require_tool, Service};

/// An nginx that proxies everything to one loopback port and gzips JSON answers.
pub struct GzipProxy {
    /// The loopback port it listens on.
    pub port: u16,
    // Fields drop in order: the service before its prefix dir.
    service: Service,
    dir: TempDir,
}

impl GzipProxy {
    /// Starts nginx on a free port in front of 127.0.0.1:`backend`.
    pub fn start(backend: u16) -> GzipProxy {
        let (port, service, dir) = start_nginx(|port| {
            format!(
                "server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n\
                 location / {{\n      proxy_pass http://127.0.0.1:{backend};\n\
                   proxy_set_header Host $http_host;\n      proxy_http_version 1.1;\n\
                   gzip on;\n      gzip_types application/json;\n      gzip_min_length 1;\n\
                   gzip_proxied any;\n    }}\n  }}\n"
            )
        });
        GzipProxy { port, service, dir }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// joxit's `nginx/default.conf` as its entrypoint renders it for `NGINX_PROXY_PASS_URL` (docker-registry-ui
/// 2.5): the limits it lifts, chunked on, no buffering either way, the old-docker User-Agent refusal, HTTP/1.1
/// to the registry, and nginx's default `Host` (the registry's address, not the browser's).
pub struct JoxitProxy {
    /// The loopback port it listens on.
    pub port: u16,
    // Fields drop in order: the service before its dirs.
    service: Service,
    dir: TempDir,
    html: TempDir,
}

impl JoxitProxy {
    /// Starts it on a free port, serving `page` as `/index.html` and proxying `/v2` to `registry_url`.
    pub fn start(registry_url: &str, page: &str) -> JoxitProxy {
        let html = tempfile::Builder::new()
            .prefix("gh-joxit-html-")
            .tempdir()
            .expect("temp dir");
        fs::write(html.path().join("index.html"), page).expect("writing index.html");
        let root = html.path().display().to_string();
        let (port, service, dir) = start_nginx(|port| {
            format!(
                "server {{\n  listen 127.0.0.1:{port};\n  client_max_body_size 0;\n  client_body_buffer_size 32k;\n\
                 client_header_buffer_size 8k;\n  large_client_header_buffers 8 64k;\n  chunked_transfer_encoding on;\n\
                 proxy_ssl_server_name on;\n  proxy_buffering off;\n  proxy_request_buffering off;\n\
                 proxy_ignore_headers \"X-Accel-Buffering\";\n\
                 location / {{ root {root}; index index.html; }}\n\
                 location /v2 {{\n\
                   if ($http_user_agent ~ \"^(docker\\/1\\.(3|4|5(?!\\.[0-9]-dev))|Go ).*$\") {{ return 404; }}\n\
                   proxy_http_version 1.1;\n    proxy_pass {registry_url};\n  }}\n}}\n"
            )
        });
        JoxitProxy {
            port,
            service,
            dir,
            html,
        }
    }

    /// `http://127.0.0.1:PORT`, the one origin the browser sees.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Starts nginx with `server(port)` as its only server block; returns once the port answers.
fn start_nginx(server: impl FnOnce(u16) -> String) -> (u16, Service, TempDir) {
    let bin = require_tool("nginx", "nginx");
    let dir = tempfile::Builder::new()
        .prefix("gh-nginx-")
        .tempdir()
        .expect("temp dir");
    let port = net::free_port();
    let p = dir.path().display().to_string();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
           {}\n}}\n",
        server(port)
    );
    let conf_path = dir.path().join("nginx.conf");
    fs::write(&conf_path, conf).expect("writing nginx.conf");
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("error.log"));
    let mut service = Service::spawn("nginx", cmd, &dir.path().join("nginx.log"));
    service.wait_ready(port, Duration::from_secs(10));
    (port, service, dir)
}
