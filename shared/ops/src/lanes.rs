//! Lanes spread over a fleet of workers (issue 29): the workers' door to the
//! lane leases (`lifecycle_store::lanes`), and the rule by which each worker
//! decides, every round, which lanes to hold.
//!
//! With W live workers and L lanes, a worker holds at most ⌈L/W⌉ lanes: it
//! renews what it holds, gives up what is above that share, and takes free or
//! lapsed lanes up to it. So that nobody idles while another holds more than
//! its part, a worker at ⌊L/W⌋ or more takes nothing while some live worker
//! holds less than ⌊L/W⌋, and the worker holding the most (the smallest id
//! among equals) gives one lane up for it.

use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_store::lanes as store;
use lifecycle_store::{Db, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Workers not seen for this many lease lengths are forgotten.
const FORGET_AFTER_TTLS: i32 = 30;

/// One worker's view of the fleet's lane leases.
#[derive(Clone)]
pub struct Fleet {
    db: Db,
    worker_id: String,
    ttl: Duration,
    lanes: Vec<VendorKind>,
}

/// What a round found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// Workers seen within a lease's length, this one included.
    pub live_workers: usize,
    /// ⌈lanes / live workers⌉: the most this worker may hold.
    pub share: usize,
    /// The lanes this worker holds after the round (those it is giving up included).
    pub held: BTreeSet<VendorKind>,
    /// Taken in this round.
    pub taken: Vec<VendorKind>,
    /// To give up: stop consuming them, let their runs finish, then [`Fleet::release`] each.
    pub give_up: Vec<VendorKind>,
}

impl Fleet {
    pub fn new(db: Db, worker_id: impl Into<String>, ttl: Duration) -> Self {
        Self { db, worker_id: worker_id.into(), ttl, lanes: VendorKind::ALL.to_vec() }
    }

    /// Over these lanes only (tests of fewer lanes than vendors).
    pub fn with_lanes(mut self, lanes: &[VendorKind]) -> Self {
        self.lanes = lanes.to_vec();
        self
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// One round at `now`: marks this worker present, renews its leases, and
    /// takes what its share allows. `giving_up`: lanes already being given up
    /// (not counted as kept, not picked again).
    pub async fn round(&self, now: DateTime<Utc>, giving_up: &BTreeSet<VendorKind>) -> Result<Round> {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(10));
        let until = now + ttl;
        let names: Vec<&str> = self.lanes.iter().map(|l| l.as_str()).collect();
        store::ensure(&self.db, &names).await?;
        store::mark_present(&self.db, &self.worker_id, now).await?;
        store::forget_workers(&self.db, now - ttl * FORGET_AFTER_TTLS).await?;
        let mut live = store::live_workers(&self.db, now - ttl).await?;
        if !live.contains(&self.worker_id) {
            // Its own mark is there unless the clock went back: it is alive either way.
            live.push(self.worker_id.clone());
        }
        store::renew(&self.db, &self.worker_id, until).await?;
        let leases = store::leases(&self.db).await?;
        let holders: BTreeMap<VendorKind, Option<String>> = leases
            .into_iter()
            .filter_map(|l| {
                let lane = l.lane.parse::<VendorKind>().ok().filter(|v| self.lanes.contains(v))?;
                let live_lease = l.holder.filter(|_| l.expires_at.is_some_and(|e| e > now));
                Some((lane, live_lease))
            })
            .collect();
        let plan = plan(&self.worker_id, self.lanes.len(), &live, &holders, giving_up);
        let mut held: BTreeSet<VendorKind> =
            holders.iter().filter(|(_, h)| h.as_deref() == Some(self.worker_id.as_str())).map(|(l, _)| *l).collect();
        let mut taken = Vec::new();
        // A lane lost to another taker: try the next, until the share is full.
        for lane in &plan.candidates {
            if taken.len() >= plan.take {
                break;
            }
            if store::take(&self.db, lane.as_str(), &self.worker_id, now, until).await? {
                held.insert(*lane);
                taken.push(*lane);
            }
        }
        Ok(Round { live_workers: live.len(), share: plan.share, held, taken, give_up: plan.give_up })
    }

    /// Gives `lane` up: the next taker may have it at once.
    pub async fn release(&self, lane: VendorKind) -> Result<bool> {
        store::release(&self.db, lane.as_str(), &self.worker_id).await
    }

    /// This worker stops: its lanes free, its presence gone.
    pub async fn leave(&self) -> Result<()> {
        store::leave(&self.db, &self.worker_id).await
    }
}

/// What one worker should do about its lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub share: usize,
    pub give_up: Vec<VendorKind>,
    /// How many lanes to take, trying `candidates` in order (a take may lose to another worker).
    pub take: usize,
    /// Lanes free or lapsed, in the order to try them.
    pub candidates: Vec<VendorKind>,
}

/// The rule (see the module docs). `holders`: each lane and its live holder
/// (none when free or lapsed); `live`: the workers seen within a lease.
pub fn plan(
    me: &str,
    lanes: usize,
    live: &[String],
    holders: &BTreeMap<VendorKind, Option<String>>,
    giving_up: &BTreeSet<VendorKind>,
) -> Plan {
    let workers = live.len().max(1);
    let share = lanes.div_ceil(workers);
    let floor = lanes / workers;
    let mut counts: BTreeMap<&str, usize> = live.iter().map(|w| (w.as_str(), 0)).collect();
    for holder in holders.values().flatten() {
        if let Some(n) = counts.get_mut(holder.as_str()) {
            *n += 1;
        }
    }
    let mine: Vec<VendorKind> = holders.iter().filter(|(_, h)| h.as_deref() == Some(me)).map(|(l, _)| *l).collect();
    let keep: Vec<VendorKind> = mine.iter().copied().filter(|l| !giving_up.contains(l)).collect();
    let someone_short = counts.iter().any(|(w, n)| *w != me && *n < floor);
    // The worker holding the most, the smallest id among equals.
    let richest = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(w, _)| *w);

    let mut give_up = Vec::new();
    if keep.len() > share {
        give_up.extend(keep[share..].iter().copied());
    } else if keep.len() > floor && someone_short && richest == Some(me) && giving_up.is_empty() {
        give_up.push(*keep.last().expect("keeps more than floor >= 0 lanes"));
    }
    let mut candidates: Vec<VendorKind> = holders.iter().filter(|(_, h)| h.is_none()).map(|(l, _)| *l).collect();
    // Start each worker at its own place among the free lanes, so that workers
    // taking at once mostly try different ones.
    if !candidates.is_empty() {
        let start = me.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % candidates.len();
        candidates.rotate_left(start);
    }
    let take = if !give_up.is_empty() || !giving_up.is_empty() || (keep.len() >= floor && someone_short) {
        0
    } else {
        share.saturating_sub(keep.len())
    };
    Plan { share, give_up, take, candidates }
}

/// Who holds a lane, for operators.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LaneHolder {
    pub lane: String,
    /// None: free, or its holder's lease lapsed.
    pub holder: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub taken_at: Option<DateTime<Utc>>,
}

/// Every lane and its live holder at `now`.
pub async fn holders(db: &Db, now: DateTime<Utc>) -> Result<Vec<LaneHolder>> {
    Ok(store::leases(db)
        .await?
        .into_iter()
        .map(|l| {
            let live = l.expires_at.is_some_and(|e| e > now);
            LaneHolder {
                lane: l.lane,
                holder: l.holder.filter(|_| live),
                expires_at: l.expires_at.filter(|_| live),
                taken_at: l.taken_at,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use VendorKind::*;

    fn held(pairs: &[(VendorKind, Option<&str>)]) -> BTreeMap<VendorKind, Option<String>> {
        pairs.iter().map(|(l, h)| (*l, h.map(str::to_string))).collect()
    }

    fn live(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_lone_worker_takes_every_lane() {
        let h = held(&[(Pipedrive, None), (Jira, None), (Calendly, None)]);
        let p = plan("a", 3, &live(&["a"]), &h, &BTreeSet::new());
        assert_eq!((p.share, p.take, p.give_up.len(), p.candidates.len()), (3, 3, 0, 3));
    }

    #[test]
    fn a_worker_above_its_share_gives_the_rest_up_and_takes_nothing() {
        let h = held(&[(Pipedrive, Some("a")), (Jira, Some("a")), (Calendly, Some("a")), (Github, Some("a"))]);
        let p = plan("a", 4, &live(&["a", "b"]), &h, &BTreeSet::new());
        assert_eq!(p.share, 2);
        assert_eq!(p.give_up.len(), 2);
        assert_eq!(p.take, 0);
        // Already giving those two up: nothing more.
        let giving: BTreeSet<_> = p.give_up.iter().copied().collect();
        let again = plan("a", 4, &live(&["a", "b"]), &h, &giving);
        assert!(again.give_up.is_empty() && again.take == 0, "{again:?}");
    }

    #[test]
    fn the_worker_holding_the_most_gives_one_up_for_a_worker_with_none() {
        // 6 lanes, 4 workers: share 2, floor 1; d holds nothing.
        let h = held(&[
            (Pipedrive, Some("a")),
            (Crowdstrike, Some("a")),
            (Jira, Some("b")),
            (Calendly, Some("b")),
            (Circleci, Some("c")),
            (Github, Some("c")),
        ]);
        let ids = live(&["a", "b", "c", "d"]);
        assert_eq!(plan("a", 6, &ids, &h, &BTreeSet::new()).give_up.len(), 1, "a: the smallest id of the richest");
        assert!(plan("b", 6, &ids, &h, &BTreeSet::new()).give_up.is_empty());
        assert!(plan("c", 6, &ids, &h, &BTreeSet::new()).give_up.is_empty());
        // Once a's lane is free, a (at the floor) leaves it to d.
        let h = held(&[
            (Pipedrive, Some("a")),
            (Crowdstrike, None),
            (Jira, Some("b")),
            (Calendly, Some("b")),
            (Circleci, Some("c")),
            (Github, Some("c")),
        ]);
        assert_eq!(plan("a", 6, &ids, &h, &BTreeSet::new()).take, 0);
        let d = plan("d", 6, &ids, &h, &BTreeSet::new());
        assert_eq!((d.take, d.candidates.clone()), (2, vec![Crowdstrike]));
    }
}
