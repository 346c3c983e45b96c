//! The core's side of a shared tier, with a tier kept in a map (the Redis tier's own tests
//! run against a real Redis): what `pull` brings in and counts, which changes the tier hears
//! of, and how a claim is decided.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata::store::{
    Claim, ClaimError, Fetched, Namespace, Put, Seen, SharedClaim, SharedFetch, SharedTier,
    SharedWrite, Source, Store, Update,
};
use strata::{Inserted, Key};

/// A tier holding values in a map, remembering which keys it was told changed (clones
/// share both).
#[derive(Default, Clone)]
struct MapTier {
    values: Arc<Mutex<HashMap<Key, String>>>,
    changed: Arc<Mutex<Vec<Key>>>,
}

impl SharedTier<String> for MapTier {
    fn fetch(&self, key: &Key) -> SharedFetch<String> {
        let found = self.values.lock().unwrap().get(key).cloned();
        Box::pin(async move {
            match found {
                Some(value) => Fetched::Found {
                    value,
                    ttl: Some(Duration::from_secs(60)),
                    tags: Vec::new(),
                },
                None => Fetched::Missing { seen: Seen(0, 0) },
            }
        })
    }

    fn fill(&self, fill: SharedWrite<'_, String>) {
        self.values
            .lock()
            .unwrap()
            .insert(fill.key.clone(), fill.value.clone());
    }

    fn inserted(&self, key: &Key) {
        self.changed.lock().unwrap().push(key.clone());
    }

    fn claim(&self, key: &Key, value: &String, _ttl: Option<Duration>) -> SharedClaim<String> {
        let mut values = self.values.lock().unwrap();
        let decided = match values.get(key) {
            Some(there) => Claim::Lost(there.clone()),
            None => {
                values.insert(key.clone(), value.clone());
                Claim::Won
            }
        };
        Box::pin(std::future::ready(decided))
    }
}

/// The default namespace of a new store on a [`MapTier`] holding `values`.
fn on_tier(values: &[(&str, &str)]) -> (Namespace<String>, MapTier) {
    let ns = Store::new().namespace::<String>("default").unwrap();
    let tier = MapTier::default();
    for (key, value) in values {
        tier.values
            .lock()
            .unwrap()
            .insert(Key::from(*key), (*value).to_owned());
    }
    assert!(ns.share(Arc::new(tier.clone())));
    (ns, tier)
}

/// A tier that cannot decide a claim (the trait's default).
struct Undeciding;

impl SharedTier<String> for Undeciding {
    fn fetch(&self, _key: &Key) -> SharedFetch<String> {
        Box::pin(std::future::ready(Fetched::Unavailable))
    }
    fn fill(&self, _fill: SharedWrite<'_, String>) {}
    fn inserted(&self, _key: &Key) {}
}

#[tokio::test]
async fn pull_brings_a_key_in_from_the_tier_counting_no_hit_or_miss() {
    let (ns, _tier) = on_tier(&[("there", "from the tier")]);

    ns.pull("there").await;
    ns.pull("nowhere").await;
    let stats = ns.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0), "a pull counts no read");
    assert_eq!(ns.load_stats().loads, 2, "but each is a load");
    assert_eq!(
        ns.peek_with("there", String::clone).as_deref(),
        Some("from the tier")
    );
    assert!(!ns.contains_key("nowhere"), "the origin is not asked");
    let ttl = ns.ttl("there").flatten().unwrap();
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );

    // Held already: nothing is loaded.
    ns.pull("there").await;
    assert_eq!(ns.load_stats().loads, 2);
    assert_eq!(ns.peek_with("there", String::len), Some(13));
    assert_eq!(ns.stats().hits, 0, "peek_with counts nothing either");
}

#[tokio::test]
async fn inserts_and_updates_that_change_a_key_are_told_to_the_tier() {
    let (ns, tier) = on_tier(&[]);
    let told = || tier.changed.lock().unwrap().len();

    ns.insert("k", "v1".into()).unwrap();
    assert_eq!(told(), 1);
    let append = |current: Option<strata::store::Current<'_, String>>| {
        let next = format!("{}+", current.map_or("", |c| c.value.as_str()));
        (Update::Put(next, Put::new().keep_ttl()), ())
    };
    ns.update("k", append).unwrap();
    assert_eq!(told(), 2, "a value changed");
    ns.update("k", |_| (Update::Expire(Some(Duration::from_secs(9))), ()))
        .unwrap();
    assert_eq!(told(), 3, "a TTL changed");
    ns.update("k", |_| (Update::<String>::Keep, ())).unwrap();
    ns.update("absent", |_| {
        (Update::Expire(Some(Duration::from_secs(9))), ())
    })
    .unwrap();
    assert_eq!(told(), 3, "nothing changed");
    assert_eq!(ns.get("k").as_deref(), Some("v1+"));
}

#[tokio::test]
async fn a_claim_is_decided_by_the_tier_and_kept_here_when_won() {
    let (ns, tier) = on_tier(&[("taken", "another instance's")]);

    let won = ns.claim("free", "mine".to_owned(), Put::new()).await;
    assert_eq!(won, Ok(Inserted::Inserted));
    assert_eq!(ns.get("free").as_deref(), Some("mine"), "kept here");
    assert_eq!(
        tier.changed.lock().unwrap().len(),
        0,
        "the tier wrote it already"
    );
    let lost = ns.claim("taken", "mine".to_owned(), Put::new()).await;
    assert_eq!(
        lost,
        Ok(Inserted::Existing("another instance's".to_owned()))
    );
    assert!(ns.get("taken").is_none());
    // Held here: answered without the tier.
    tier.values.lock().unwrap().clear();
    let held = ns.claim("free", "again".to_owned(), Put::new()).await;
    assert_eq!(held, Ok(Inserted::Existing("mine".to_owned())));

    // A tier that cannot decide: an error, nothing stored.
    let other = Store::new().namespace::<String>("default").unwrap();
    let undecided = Store::new().namespace::<String>("default").unwrap();
    assert!(undecided.share(Arc::new(Undeciding)));
    let claimed = undecided.claim("k", "v".to_owned(), Put::new()).await;
    assert_eq!(claimed, Err(ClaimError::Undecided));
    assert!(undecided.get("k").is_none());
    // Not shared: an insert-if-absent here.
    assert_eq!(
        other.claim("k", "v".to_owned(), Put::new()).await,
        Ok(Inserted::Inserted)
    );
}

#[tokio::test]
async fn a_batch_load_asks_the_tier_first_and_the_origin_for_the_rest_in_one_call() {
    let (ns, tier) = on_tier(&[("in the tier", "shared")]);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let origin = {
        let asked = Arc::clone(&asked);
        move |missing: Vec<Key>| async move {
            asked.lock().unwrap().extend(missing.iter().cloned());
            let found = missing
                .into_iter()
                .filter(|k| k.as_bytes() == b"in the origin")
                .map(|k| (k, "loaded".to_owned()));
            Ok::<_, std::io::Error>(found.collect::<Vec<_>>())
        }
    };
    let found = ns
        .get_many_or_load(["in the tier", "in the origin", "nowhere"], origin)
        .await
        .unwrap();
    assert_eq!(found[&Key::from("in the tier")].source, Source::Shared);
    assert_eq!(found[&Key::from("in the origin")].source, Source::Origin);
    assert!(!found.contains_key(&Key::from("nowhere")));
    let mut asked = asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, [Key::from("in the origin"), Key::from("nowhere")]);
    assert_eq!(
        tier.values
            .lock()
            .unwrap()
            .get(&Key::from("in the origin"))
            .map(String::as_str),
        Some("loaded"),
        "the origin's answer was handed to the tier"
    );
    assert_eq!(
        ns.peek_with("in the tier", String::clone).as_deref(),
        Some("shared")
    );
}
