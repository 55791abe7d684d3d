//! A vendor's catalogue (its roles, its groups, the organization's id), kept
//! by the worker for a bounded age instead of being fetched for every run.
//!
//! Under a rate limit every request counts (runs per second = budget ÷
//! requests per run), and catalogues change rarely. The age bound
//! (`catalog_max_age` in each vendor's table, 5 minutes by default) limits how
//! long a change at the vendor can go unseen; and a name that is not in the
//! cached catalogue is looked up again once, in a fresh copy, before a run
//! fails for it ("unknown role"), so a role added at the vendor a minute ago
//! is found at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// `catalog_max_age`'s default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

pub fn default_max_age() -> Duration {
    DEFAULT_MAX_AGE
}

/// One cached catalogue of type `T`.
pub struct Cached<T> {
    max_age: Duration,
    slot: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Cached<T> {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, slot: Mutex::new(None) }
    }

    /// The catalogue, fetched with `load` when there is none younger than
    /// the age bound. Concurrent callers wait for one fetch.
    pub async fn get<E, F, Fut>(&self, load: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Ok(self.get_fresh(load).await?.0)
    }

    /// Looks `find` up in the catalogue. On a miss in a copy this call did
    /// not fetch itself, fetches a fresh copy once and looks again: only then
    /// is the answer `None`.
    pub async fn find<R, E, F, Fut>(&self, load: F, find: impl Fn(&T) -> Option<R>) -> Result<Option<R>, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (catalogue, fetched) = self.get_fresh(&load).await?;
        if let Some(found) = find(&catalogue) {
            return Ok(Some(found));
        }
        if fetched {
            return Ok(None);
        }
        self.invalidate_if_same(&catalogue).await;
        let (catalogue, _) = self.get_fresh(&load).await?;
        Ok(find(&catalogue))
    }

    /// Forgets the catalogue: the next use fetches it (e.g. after the vendor
    /// refused a request because an id in it no longer exists).
    pub async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }

    /// The catalogue, and whether this call fetched it.
    async fn get_fresh<E, F, Fut>(&self, load: F) -> Result<(Arc<T>, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, value)) = slot.as_ref() {
            if at.elapsed() < self.max_age {
                return Ok((value.clone(), false));
            }
        }
        let value = Arc::new(load().await?);
        *slot = Some((Instant::now(), value.clone()));
        Ok((value, true))
    }

    /// Forgets the catalogue unless another caller already replaced `seen`
    /// with a fresher copy (which is then used as it is).
    async fn invalidate_if_same(&self, seen: &Arc<T>) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(_, v)| Arc::ptr_eq(v, seen)) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn roles(fetches: &AtomicU32, names: &[&str]) -> Result<Vec<String>, String> {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(names.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn a_fresh_catalogue_is_fetched_once() {
        let fetches = AtomicU32::new(0);
        let cache = Cached::new(Duration::from_secs(60));
        for _ in 0..5 {
            let found =
                cache.find(|| roles(&fetches, &["admin", "sales"]), |r| r.iter().position(|n| n == "sales")).await;
            assert_eq!(found, Ok(Some(1)));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_miss_refreshes_once_before_saying_unknown() {
        let fetches = AtomicU32::new(0);
        let cache = Cached::new(Duration::from_secs(60));
        cache.get(|| roles(&fetches, &["admin"])).await.unwrap();
        // Added at the vendor since: found after one refresh.
        let found = cache.find(|| roles(&fetches, &["admin", "new"]), |r| r.iter().position(|n| n == "new")).await;
        assert_eq!((found, fetches.load(Ordering::SeqCst)), (Ok(Some(1)), 2));
        // Truly unknown: one refresh, then None (not a loop).
        let found = cache.find(|| roles(&fetches, &["admin", "new"]), |r| r.iter().position(|n| n == "nope")).await;
        assert_eq!((found, fetches.load(Ordering::SeqCst)), (Ok(None), 3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_catalogue_is_fetched_again() {
        let fetches = AtomicU32::new(0);
        let cache = Cached::new(Duration::from_secs(60));
        cache.get(|| roles(&fetches, &["admin"])).await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        let now: Arc<Vec<String>> = cache.get(|| roles(&fetches, &["renamed"])).await.unwrap();
        assert_eq!((now[0].as_str(), fetches.load(Ordering::SeqCst)), ("renamed", 2));
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let cache: Cached<Vec<String>> = Cached::new(Duration::from_secs(60));
        assert_eq!(cache.get(|| async { Err::<Vec<String>, _>("503") }).await.unwrap_err(), "503");
        let fetches = AtomicU32::new(0);
        cache.get(|| roles(&fetches, &["admin"])).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
