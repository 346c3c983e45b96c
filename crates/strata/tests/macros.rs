//! `#[cached]` and `#[invalidates]`, through the macros, against the global store.
//!
//! The global store is per process, and every test of this file runs in this one: each
//! calls [`store`] first, which sets the global store once (with a mock clock and every
//! namespace the file's macros name), and each uses namespaces of its own, so that tests
//! running in parallel do not see each other's entries. Only `ttl_*` moves the mock clock,
//! and only its namespaces have TTLs.
#![cfg(all(feature = "macros", not(feature = "shuttle")))]

use std::fmt::Display;
use std::num::ParseIntError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use strata::cached::{global, set_global, GlobalError};
use strata::config::Config;
use strata::store::{Put, Store};
use strata::{cached, invalidates, MockClock};

const CONFIG: &str = r#"
[namespaces.basic_async]
[namespaces.basic_sync]
[namespaces.basic_method]
[namespaces.basic_borrow]
[namespaces.flow]
[namespaces.flight]
[namespaces.errors]
[namespaces.leader_error]
[namespaces.cancel]
[namespaces.panic]
[namespaces.inv_user]
[namespaces.inv_pattern]
[namespaces.tagged]
[namespaces.escaping]
[namespaces.by_name]
[namespaces.shapes]
[namespaces.ttl_fn]
[namespaces.ttl_ns]
ttl = "1m"
"#;

fn config() -> Config {
    Config::from_sources(Some(CONFIG), []).expect("the test configuration is valid")
}

/// Sets the global store once, with a mock clock; every test calls it first.
fn store() -> &'static MockClock {
    static CLOCK: OnceLock<MockClock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let clock = MockClock::new();
        let store = Store::builder(config())
            .clock(clock.clone())
            .build()
            .expect("the test store builds");
        set_global(store).expect("the global store is set before any cached call");
        clock
    })
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------------
// Hits, keys, sync and async, methods, borrowed arguments
// ---------------------------------------------------------------------------------------------

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "basic_async", key = "square::{n}")]
async fn square(n: u64) -> u64 {
    bump(&SQUARE_RUNS);
    n * n
}

#[tokio::test]
async fn async_fn_second_call_is_a_hit_and_other_arguments_are_other_keys() {
    store();
    assert_eq!(square(3).await, 9);
    assert_eq!(square(3).await, 9);
    assert_eq!(runs(&SQUARE_RUNS), 1);
    assert_eq!(square(4).await, 16);
    assert_eq!(runs(&SQUARE_RUNS), 2);
    assert_eq!(square(3).await, 9);
    assert_eq!(runs(&SQUARE_RUNS), 2);
}

static CUBE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "basic_sync", key = "cube::{n}")]
fn cube(n: u64) -> u64 {
    bump(&CUBE_RUNS);
    n * n * n
}

static SHOW_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Generic, with a where-clause: the site is one static for every instance.
#[cached(namespace = "basic_sync", key = "show::{value}")]
fn show<T>(value: T) -> String
where
    T: Display,
{
    bump(&SHOW_RUNS);
    format!("<{value}>")
}

#[test]
fn sync_fn_second_call_is_a_hit() {
    store();
    assert_eq!(cube(2), 8);
    assert_eq!(cube(2), 8);
    assert_eq!(runs(&CUBE_RUNS), 1);
    assert_eq!(cube(3), 27);
    assert_eq!(runs(&CUBE_RUNS), 2);

    assert_eq!(show(5u8), "<5>");
    assert_eq!(show("5"), "<5>");
    assert_eq!(show(6i64), "<6>");
    assert_eq!(runs(&SHOW_RUNS), 2);
}

struct Repo {
    name: String,
    runs: AtomicUsize,
}

impl Repo {
    #[cached(namespace = "basic_method", key = "repo::{self.name}::{id}")]
    async fn get(&self, id: u64) -> String {
        bump(&self.runs);
        format!("{}-{id}", self.name)
    }

    /// Documented, with an attribute: both stay on the function.
    #[cached(namespace = "basic_method", key = "repo_sync::{self.name}::{id}")]
    #[inline(never)]
    pub fn get_sync(&self, id: u64) -> String {
        bump(&self.runs);
        format!("{}={id}", self.name)
    }
}

#[tokio::test]
async fn methods_with_a_self_reference_are_cached_by_their_key() {
    store();
    let a = Repo {
        name: "a".into(),
        runs: AtomicUsize::new(0),
    };
    let b = Repo {
        name: "b".into(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(a.get(1).await, "a-1");
    assert_eq!(a.get(1).await, "a-1");
    assert_eq!(b.get(1).await, "b-1");
    assert_eq!(a.get_sync(1), "a=1");
    assert_eq!(a.get_sync(1), "a=1");
    assert_eq!(runs(&a.runs), 2);
    assert_eq!(runs(&b.runs), 1);
}

static BORROW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "basic_borrow", key = "chars::{text}")]
fn char_count(text: &str) -> usize {
    bump(&BORROW_RUNS);
    text.chars().count()
}

#[cached(namespace = "basic_borrow", key = "upper::{text}")]
async fn upper(text: &str) -> String {
    bump(&BORROW_RUNS);
    tokio::task::yield_now().await;
    text.to_uppercase()
}

#[tokio::test]
async fn bodies_may_borrow_their_arguments() {
    store();
    let owned = String::from("héllo");
    assert_eq!(char_count(&owned), 5);
    assert_eq!(char_count("héllo"), 5);
    assert_eq!(upper(&owned).await, "HÉLLO");
    assert_eq!(upper("héllo").await, "HÉLLO");
    assert_eq!(runs(&BORROW_RUNS), 2);
}

#[test]
fn the_macros_declare_their_namespaces_at_link_time() {
    let declared: Vec<(&str, &str)> = strata::cached::declared()
        .map(|d| (d.namespace, d.function))
        .collect();
    assert!(declared.contains(&("basic_async", "macros::square")));
    assert!(declared.contains(&("basic_method", "macros::get")));
    assert!(declared.contains(&("inv_user", "macros::update_user")));
    // #[invalidates] without a namespace declares none.
    assert!(!declared.iter().any(|(_, f)| *f == "macros::forget_item"));
}

static SHAPE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A `mut` parameter, an `impl Trait` one, a pattern, and an inner attribute.
#[cached(namespace = "shapes", key = "shape::{label}::{x}::{y}::{extra.0}")]
fn shape(mut label: String, (x, y): (i32, i32), extra: (u8,), suffix: impl Display) -> String {
    #![allow(clippy::needless_pass_by_value)]
    bump(&SHAPE_RUNS);
    label.push_str(&format!("{suffix}"));
    format!("{label}:{x},{y},{}", extra.0)
}

struct Counter {
    value: u64,
}

impl Counter {
    #[invalidates(namespace = "shapes", keys = ["shape::{name}::1::2::3"])]
    fn bump_by(&mut self, name: &str, by: &str) -> Result<u64, ParseIntError> {
        let _ = name;
        if by.is_empty() {
            return Ok(self.value);
        }
        self.value += by.parse::<u64>()?;
        Ok(self.value)
    }
}

#[test]
fn mut_pattern_and_impl_trait_parameters_and_mut_self_methods() {
    store();
    assert_eq!(shape("a".into(), (1, 2), (3,), '!'), "a!:1,2,3");
    assert_eq!(shape("a".into(), (1, 2), (3,), '?'), "a!:1,2,3");
    assert_eq!(runs(&SHAPE_RUNS), 1);

    let mut counter = Counter { value: 0 };
    assert!(counter.bump_by("a", "x").is_err());
    shape("a".into(), (1, 2), (3,), '?');
    assert_eq!(runs(&SHAPE_RUNS), 1, "an error invalidates nothing");
    assert_eq!(counter.bump_by("a", ""), Ok(0));
    assert_eq!(counter.bump_by("a", "5"), Ok(5));
    assert_eq!(shape("a".into(), (1, 2), (3,), '?'), "a?:1,2,3");
    assert_eq!(runs(&SHAPE_RUNS), 2);
}

// ---------------------------------------------------------------------------------------------
// `?` and `return` in bodies
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum ParseError {
    Empty,
    Number(ParseIntError),
}

impl From<ParseIntError> for ParseError {
    fn from(e: ParseIntError) -> Self {
        ParseError::Number(e)
    }
}

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Its error type is neither `Clone` nor the one `?` starts from.
#[cached(namespace = "flow", key = "parse::{text}")]
fn parse_number(text: &str) -> Result<u64, ParseError> {
    bump(&PARSE_RUNS);
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    if text == "zero" {
        return Ok(0);
    }
    let n: u64 = text.parse()?;
    Ok(n)
}

#[cached(namespace = "flow", key = "parse_async::{text}")]
async fn parse_number_async(text: &str) -> Result<u64, ParseError> {
    bump(&PARSE_RUNS);
    tokio::task::yield_now().await;
    if text == "zero" {
        return Ok(0);
    }
    Ok(text.parse::<u64>()?)
}

#[tokio::test]
async fn question_mark_and_early_return_work_in_cached_bodies() {
    store();
    assert_eq!(parse_number("12"), Ok(12));
    assert_eq!(parse_number("12"), Ok(12));
    assert_eq!(parse_number("zero"), Ok(0));
    assert_eq!(parse_number("zero"), Ok(0));
    assert_eq!(runs(&PARSE_RUNS), 2);
    assert_eq!(parse_number(""), Err(ParseError::Empty));
    assert!(matches!(parse_number("x"), Err(ParseError::Number(_))));
    assert!(matches!(parse_number("x"), Err(ParseError::Number(_))));
    assert_eq!(runs(&PARSE_RUNS), 5);

    assert_eq!(parse_number_async("zero").await, Ok(0));
    assert_eq!(parse_number_async("zero").await, Ok(0));
    assert_eq!(parse_number_async("7").await, Ok(7));
    assert!(matches!(
        parse_number_async("y").await,
        Err(ParseError::Number(_))
    ));
    assert_eq!(runs(&PARSE_RUNS), 8);
}

// ---------------------------------------------------------------------------------------------
// Single flight, errors, cancellation, panics
// ---------------------------------------------------------------------------------------------

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "flight", key = "slow::{n}")]
async fn slow(n: u64) -> u64 {
    bump(&SLOW_RUNS);
    tokio::time::sleep(Duration::from_secs(1)).await;
    n + 1
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_misses_run_the_body_once() {
    store();
    let tasks: Vec<_> = (0..1_000).map(|_| tokio::spawn(slow(7))).collect();
    for task in tasks {
        assert_eq!(task.await.expect("the task ends"), 8);
    }
    assert_eq!(runs(&SLOW_RUNS), 1);
    assert_eq!(slow(7).await, 8);
    assert_eq!(runs(&SLOW_RUNS), 1);
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);
static STICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails for odd arguments.
#[cached(namespace = "errors", key = "flaky::{n}")]
async fn flaky(n: u64) -> Result<u64, String> {
    bump(&FLAKY_RUNS);
    if n % 2 == 1 {
        return Err(format!("{n} is odd"));
    }
    Ok(n / 2)
}

#[cached(namespace = "errors", key = "sticky::{n}", cache_errors)]
fn sticky(n: u64) -> Result<u64, String> {
    bump(&STICKY_RUNS);
    if n % 2 == 1 {
        return Err(format!("{n} is odd"));
    }
    Ok(n / 2)
}

#[tokio::test]
async fn errors_are_not_cached_unless_cache_errors() {
    store();
    assert_eq!(flaky(1).await, Err("1 is odd".to_string()));
    assert_eq!(flaky(1).await, Err("1 is odd".to_string()));
    assert_eq!(runs(&FLAKY_RUNS), 2);
    assert_eq!(flaky(2).await, Ok(1));
    assert_eq!(flaky(2).await, Ok(1));
    assert_eq!(runs(&FLAKY_RUNS), 3);

    assert_eq!(sticky(1), Err("1 is odd".to_string()));
    assert_eq!(sticky(1), Err("1 is odd".to_string()));
    assert_eq!(sticky(2), Ok(1));
    assert_eq!(sticky(2), Ok(1));
    assert_eq!(runs(&STICKY_RUNS), 2);
}

static DOWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "leader_error", key = "down")]
async fn origin_down() -> Result<u64, String> {
    bump(&DOWN_RUNS);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Err("origin down".into())
}

/// Yields until `counter` reaches `n` (the spawned tasks run meanwhile).
async fn until(counter: &AtomicUsize, n: usize) {
    while runs(counter) < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_leaders_waiters_get_no_copy_of_its_error_each_runs_the_body_once() {
    store();
    const WAITERS: usize = 10;
    let leader = tokio::spawn(origin_down());
    until(&DOWN_RUNS, 1).await;
    let waiters: Vec<_> = (0..WAITERS).map(|_| tokio::spawn(origin_down())).collect();
    // Every waiter joins the leader's flight before the leader's body ends.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&DOWN_RUNS), 1);
    assert_eq!(
        leader.await.expect("the leader ends"),
        Err("origin down".into())
    );
    for waiter in waiters {
        assert_eq!(
            waiter.await.expect("a waiter ends"),
            Err("origin down".into())
        );
    }
    assert_eq!(runs(&DOWN_RUNS), 1 + WAITERS);
}

static CANCEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "cancel", key = "slow")]
async fn slow_answer() -> u64 {
    bump(&CANCEL_RUNS);
    tokio::time::sleep(Duration::from_secs(10)).await;
    42
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leaders_waiter_takes_over_and_gets_the_value() {
    store();
    let leader = tokio::spawn(slow_answer());
    until(&CANCEL_RUNS, 1).await;
    let waiter = tokio::spawn(slow_answer());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runs(&CANCEL_RUNS), 1, "the second caller waits");
    leader.abort();
    assert!(leader.await.expect_err("aborted").is_cancelled());
    assert_eq!(waiter.await.expect("the waiter ends"), 42);
    assert_eq!(runs(&CANCEL_RUNS), 2);
    assert_eq!(slow_answer().await, 42);
    assert_eq!(runs(&CANCEL_RUNS), 2);
}

static BOOM_RUNS: AtomicUsize = AtomicUsize::new(0);
static BOOM: AtomicBool = AtomicBool::new(true);

#[cached(namespace = "panic", key = "boom::{n}")]
fn boom(n: u64) -> u64 {
    bump(&BOOM_RUNS);
    if BOOM.load(Ordering::SeqCst) {
        panic!("boom {n}");
    }
    n
}

#[test]
fn a_panicking_body_panics_in_its_caller_and_the_next_call_runs_it_again() {
    store();
    let panicked = std::panic::catch_unwind(|| boom(1)).expect_err("the body panics");
    assert_eq!(
        panicked.downcast_ref::<String>().map(String::as_str),
        Some("boom 1")
    );
    BOOM.store(false, Ordering::SeqCst);
    assert_eq!(boom(1), 1);
    assert_eq!(boom(1), 1);
    assert_eq!(runs(&BOOM_RUNS), 2);
}

// ---------------------------------------------------------------------------------------------
// #[invalidates]
// ---------------------------------------------------------------------------------------------

static USER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "inv_user", key = "user::{id}")]
async fn user(id: u64) -> String {
    bump(&USER_RUNS);
    format!("user {id}")
}

#[invalidates(namespace = "inv_user", keys = ["user::{id}"])]
async fn update_user(id: u64, accept: bool) -> Result<(), String> {
    tokio::task::yield_now().await;
    if !accept {
        return Err(format!("update of {id} refused"));
    }
    Ok(())
}

/// Takes its argument: the key was rendered before the body ran. Returns a plain value,
/// so it always invalidates.
#[invalidates(namespace = "inv_user", keys = ["user::{id}"])]
fn replace_user(id: u64, name: String) -> usize {
    let taken = name;
    taken.len()
}

#[tokio::test]
async fn invalidates_drops_the_key_after_success_only() {
    store();
    user(1).await;
    user(2).await;
    user(1).await;
    assert_eq!(runs(&USER_RUNS), 2);

    assert!(update_user(1, false).await.is_err());
    user(1).await;
    assert_eq!(runs(&USER_RUNS), 2, "a failed update keeps the value");

    assert_eq!(update_user(1, true).await, Ok(()));
    user(1).await;
    assert_eq!(runs(&USER_RUNS), 3, "a successful update drops it");
    user(2).await;
    assert_eq!(runs(&USER_RUNS), 3, "other keys stay");

    assert_eq!(replace_user(2, "ada".into()), 3);
    user(2).await;
    assert_eq!(runs(&USER_RUNS), 4);
}

static ITEM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "inv_pattern", key = "item::{name}::v1")]
fn item(name: &str) -> String {
    bump(&ITEM_RUNS);
    name.to_owned()
}

#[invalidates(namespace = "inv_pattern", patterns = ["item::{name}::*"])]
fn touch_item(name: &str) -> bool {
    !name.is_empty()
}

/// No namespace: every namespace.
#[invalidates(keys = ["item::{name}::v1"])]
fn forget_item(name: &str) {
    let _ = name;
}

#[test]
fn pattern_placeholders_match_only_their_own_value() {
    store();
    item("a*");
    item("ab");
    item("a?");
    assert_eq!(runs(&ITEM_RUNS), 3);

    assert!(touch_item("a*"));
    item("ab");
    item("a?");
    assert_eq!(runs(&ITEM_RUNS), 3, "`*` in the value is no wildcard");
    item("a*");
    assert_eq!(runs(&ITEM_RUNS), 4);

    forget_item("ab");
    item("ab");
    assert_eq!(runs(&ITEM_RUNS), 5, "without a namespace, every namespace");
}

#[invalidates(tags = ["owner:{owner}"])]
fn drop_owner(owner: u64) -> Result<(), std::io::Error> {
    let _ = owner;
    Ok(())
}

#[test]
fn invalidates_tags_store_wide() {
    store();
    let docs = global()
        .namespace::<String>("tagged")
        .expect("a namespace of the test store");
    docs.insert_with("doc::1", "one".to_string(), Put::new().tag("owner:7"))
        .expect("inserted");
    docs.insert_with("doc::2", "two".to_string(), Put::new().tag("owner:8"))
        .expect("inserted");
    drop_owner(7).expect("succeeds");
    assert_eq!(docs.get("doc::1"), None);
    assert_eq!(docs.get("doc::2").as_deref(), Some("two"));
}

// ---------------------------------------------------------------------------------------------
// Keys, the namespace by name, TTLs, set_global
// ---------------------------------------------------------------------------------------------

#[cached(namespace = "escaping", key = "pair::{a}::{b}")]
fn pair(a: &str, b: &str) -> String {
    format!("{a}|{b}")
}

#[test]
fn placeholder_values_are_escaped_so_different_arguments_never_share_a_key() {
    store();
    assert_eq!(pair("x::y", "z"), "x::y|z");
    assert_eq!(pair("x", "y::z"), "x|y::z");
    let stats = &global().stats().namespaces["escaping"].stats;
    assert_eq!(stats.entries, 2);
}

static BY_NAME_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "by_name", key = "v::{n}")]
fn by_name(n: u64) -> u64 {
    bump(&BY_NAME_RUNS);
    n
}

#[test]
fn a_cached_functions_namespace_is_reachable_by_name() {
    store();
    by_name(1);
    by_name(1);
    let figures = &global().stats().namespaces["by_name"];
    assert!(figures.opened);
    assert_eq!((figures.stats.hits, figures.stats.misses), (1, 1));
    assert_eq!(figures.stats.entries, 1);

    assert_eq!(global().clear_namespace("by_name").expect("a namespace"), 1);
    by_name(1);
    assert_eq!(runs(&BY_NAME_RUNS), 2);
}

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "ttl_fn", key = "t::{n}", ttl = "10m")]
fn ten_minutes(n: u64) -> u64 {
    bump(&TTL_RUNS);
    n
}

#[cached(namespace = "ttl_ns", key = "t::{n}")]
fn namespace_ttl(n: u64) -> u64 {
    bump(&TTL_RUNS);
    n
}

/// The only test that moves the clock.
#[test]
fn ttl_of_the_function_or_else_of_the_namespace() {
    let clock = store();
    ten_minutes(1);
    clock.advance(Duration::from_secs(9 * 60));
    ten_minutes(1);
    assert_eq!(runs(&TTL_RUNS), 1);
    clock.advance(Duration::from_secs(2 * 60));
    ten_minutes(1);
    assert_eq!(runs(&TTL_RUNS), 2, "past its 10 minutes");

    namespace_ttl(1);
    clock.advance(Duration::from_secs(59));
    namespace_ttl(1);
    assert_eq!(runs(&TTL_RUNS), 3);
    clock.advance(Duration::from_secs(2));
    namespace_ttl(1);
    assert_eq!(runs(&TTL_RUNS), 4, "past the namespace's minute");
}

#[test]
fn set_global_after_first_use_is_already_set() {
    store();
    let again = Store::from_config(&config()).expect("the test store builds");
    assert_eq!(set_global(again), Err(GlobalError::AlreadySet));
}
