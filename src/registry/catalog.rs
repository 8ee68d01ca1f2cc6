//! `GET /v2/_catalog`: every repository, lexically sorted, paginated with `n`/`last` and a `Link` header.
//!
//! The route needs no repository permission; the proxy narrows the list to what the caller may see with
//! [`super::Registry::catalog_visible`], before pagination so pages stay full.

use super::common::{json_ok, Page};
use super::{Reply, Request};
use crate::errcode::ApiError;
use crate::names::Name;
use crate::storage::Store;

/// Lists every repository.
pub async fn get(store: &Store, req: &Request<'_>) -> Result<Reply, ApiError> {
    get_visible(store, req, &|_| true).await
}

/// Lists the repositories `visible` accepts.
pub async fn get_visible(
    store: &Store,
    req: &Request<'_>,
    visible: &(dyn Fn(&Name) -> bool + Sync),
) -> Result<Reply, ApiError> {
    let page = Page::from_query(req.query)?;
    let all = store.catalog().await?;
    let shown = all
        .into_iter()
        .filter(|r| Name::parse(r).is_ok_and(|n| visible(&n)))
        .collect();
    let (repos, more) = page.apply(shown);
    let mut headers = Vec::new();
    if let (true, Some(last)) = (more, repos.last()) {
        headers.push(page.next_link("/v2/_catalog", last));
    }
    Ok(json_ok(
        &serde_json::json!({ "repositories": repos }),
        headers,
    ))
}
