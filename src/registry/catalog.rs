//! `GET /v2/_catalog`: every repository, lexically sorted, paginated with `n`/`last` and a `Link` header.
//!
//! The route needs no repository permission; the list is narrowed to what the caller's Permit lets it see
//! before pagination, so pages stay full.

use super::common::{json_ok, Page};
use super::Reply;
use crate::errcode::ApiError;
use crate::names::Name;
use crate::storage::Store;

/// Lists the repositories `visible` accepts, one page of them: the store walks only as far as the page (and one
/// more name, to know whether to send `Link`) needs.
pub async fn get(
    store: &Store,
    page: &Page,
    visible: &(dyn Fn(&Name) -> bool + Sync),
) -> Result<Reply, ApiError> {
    let want = page.n.map(|n| if n == 0 { 0 } else { n.saturating_add(1) });
    let found = store
        .catalog_page(page.last.as_deref(), want, visible)
        .await?;
    Ok(page_of(found, page, visible))
}

/// One page of a sorted repository list, narrowed to the valid names `visible` accepts before paging, with its
/// `Link` to the next page; also how the door pages an upstream's catalog.
pub fn page_of(all: Vec<String>, page: &Page, visible: &(dyn Fn(&Name) -> bool + Sync)) -> Reply {
    let shown = all
        .into_iter()
        .filter(|r| Name::parse(r).is_ok_and(|n| visible(&n)))
        .collect();
    let (repos, more) = page.apply(shown);
    let mut headers = Vec::new();
    if let (true, Some(last)) = (more, repos.last()) {
        headers.push(page.next_link("/v2/_catalog", last));
    }
    json_ok(&serde_json::json!({ "repositories": repos }), headers)
}
