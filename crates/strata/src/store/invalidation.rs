//! Invalidation: the [`Invalidation`] value (what is applied here and published to other
//! instances), the [`Publisher`] hook, and the store's ways of invalidating: by key, prefix,
//! pattern, tag, namespace, and by event through the configuration's rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::config::events::{Escape, Template};
use crate::key::Key;
use crate::Pattern;

/// One invalidation, as applied locally and as published to other instances. Serialised
/// with serde (externally tagged: `{"tag": {"tag": "dashboard:42"}}`); keys, prefixes and
/// patterns are strings when they are UTF-8. A `namespace` of `None` means every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidation {
    /// One key.
    Key {
        /// Where; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The key.
        key: Key,
    },
    /// Every key starting with `prefix`.
    Prefix {
        /// Where; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The prefix.
        prefix: Key,
    },
    /// Every key matching a glob pattern (Redis `MATCH` syntax).
    Pattern {
        /// Where; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The pattern.
        pattern: Key,
    },
    /// Every entry carrying a tag, in every namespace.
    Tag {
        /// The tag.
        tag: String,
    },
    /// An event, run through the rules. Published as the event (one message however much it
    /// expands to); each instance expands it with its own rules.
    Event {
        /// The event's name.
        event: String,
        /// Its parameters.
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    /// Everything in a namespace, or in every namespace.
    Clear {
        /// Which; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

/// Called with every invalidation applied locally (not with those from
/// [`Store::apply_remote`]). The invalidation waits for it to return: hand the value to a
/// channel or a task rather than doing I/O here.
pub type Publisher = dyn Fn(&Invalidation) + Send + Sync + 'static;

impl Store {
    /// Applies `invalidation` here and hands it to the publisher. Returns how many live
    /// entries it dropped: exact for keys, prefixes and patterns; for a tag, the count of
    /// [`tag_count`](Self::tag_count) (an upper bound); for a clear, the entries held; for
    /// an event, the sum of its parts (so an entry dropped by two of them counts twice).
    pub fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, StoreError> {
        let n = self.apply(invalidation)?;
        self.inner.core.publish(invalidation);
        Ok(n)
    }

    /// Applies an invalidation received from another instance, without publishing it again.
    pub fn apply_remote(&self, invalidation: &Invalidation) -> Result<u64, StoreError> {
        self.apply(invalidation)
    }

    fn apply(&self, invalidation: &Invalidation) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        Ok(match invalidation {
            Invalidation::Key { namespace, key } => inner
                .scope(namespace.as_deref())?
                .iter()
                .map(|ns| ns.remove_key(key.as_bytes()))
                .sum(),
            Invalidation::Prefix { namespace, prefix } => inner
                .scope(namespace.as_deref())?
                .iter()
                .map(|ns| ns.remove_prefix(prefix.as_bytes()))
                .sum(),
            Invalidation::Pattern { namespace, pattern } => {
                let pattern = Pattern::new(pattern.as_bytes());
                inner
                    .scope(namespace.as_deref())?
                    .iter()
                    .map(|ns| ns.remove_pattern(&pattern))
                    .sum()
            }
            Invalidation::Tag { tag } => self.kill_tag(tag),
            Invalidation::Clear { namespace } => inner
                .scope(namespace.as_deref())?
                .iter()
                .map(|ns| ns.clear_now())
                .sum(),
            Invalidation::Event { event, params } => self.run_event(event, params)?,
        })
    }

    fn kill_tag(&self, tag: &str) -> u64 {
        let n = self.inner.core.tags.invalidate(tag);
        if n > 0 && !self.inner.core.janitor.request_purge() {
            // No background thread: reclaim here.
            self.inner.purge_dead();
        }
        n
    }

    /// Expands an event through the rules and applies what it names.
    fn run_event(&self, event: &str, params: &BTreeMap<String, String>) -> Result<u64, StoreError> {
        let mut dropped = 0;
        for part in self.expand_event(event, params)? {
            dropped += self.apply(&part)?;
        }
        Ok(dropped)
    }

    /// What `event` with `params` invalidates under this store's rules, its cascades
    /// included: keys, prefixes and patterns (each in a namespace, or in all) and tags.
    /// Every parameter is checked first, so a bad event names nothing. A shared tier uses it
    /// to apply an event to what it holds.
    pub fn expand_event(
        &self,
        event: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let rules = &self.inner.rules;
        let rule = rules
            .events
            .get(event)
            .ok_or_else(|| StoreError::UnknownEvent(event.to_owned()))?;
        if let Some(missing) = rule.params.iter().find(|p| !params.contains_key(*p)) {
            return Err(StoreError::MissingParam {
                event: event.to_owned(),
                param: missing.clone(),
            });
        }
        let mut parts = Vec::new();
        // Cascades are acyclic (checked at load), so this walk ends. Every event runs once
        // however many paths reach it (all run with the same parameters, so a second run
        // would drop nothing; without this, a chain of diamonds runs exponentially often).
        let mut pending = vec![event];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name) {
                continue;
            }
            let rule = &rules.events[name];
            let render = |t: &Template, escape| {
                t.render(params, escape)
                    .map_err(|param| StoreError::MissingParam {
                        event: name.to_owned(),
                        param,
                    })
            };
            let scopes: Vec<Option<String>> = if rule.namespaces.is_empty() {
                vec![None]
            } else {
                rule.namespaces.iter().cloned().map(Some).collect()
            };
            for namespace in scopes {
                for key in &rule.keys {
                    parts.push(Invalidation::Key {
                        namespace: namespace.clone(),
                        key: Key::from(render(key, Escape::Key)?),
                    });
                }
                for prefix in &rule.prefixes {
                    parts.push(Invalidation::Prefix {
                        namespace: namespace.clone(),
                        prefix: Key::from(render(prefix, Escape::Key)?),
                    });
                }
                for pattern in &rule.patterns {
                    parts.push(Invalidation::Pattern {
                        namespace: namespace.clone(),
                        pattern: Key::from(render(pattern, Escape::Glob)?),
                    });
                }
            }
            for tag in &rule.tags {
                parts.push(Invalidation::Tag {
                    tag: render(tag, Escape::Raw)?,
                });
            }
            pending.extend(rule.cascade.iter().map(String::as_str));
        }
        Ok(parts)
    }

    /// Marks what `namespace` holds *unverified*, for a shared tier that may have missed
    /// invalidations (its log no longer reached back, or Redis lost it): every entry stops
    /// being fresh at once, so the next load checks it again (with the tier, then the
    /// origin), while a namespace with a stale window keeps the entries for the fail-safe
    /// (they are no worse than what a failing origin leaves). Without a stale window they
    /// are dropped. Loads in the air are marked too. Returns how many entries it held.
    pub fn mark_unverified(&self, namespace: &str) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .scope(Some(namespace))?
            .iter()
            .map(|ns| ns.expire_all())
            .sum())
    }

    /// Drops every entry carrying `tag`, in every namespace, and returns how many carried it
    /// (as [`tag_count`](Self::tag_count) counts them). O(1) for the caller however many
    /// that is: readers miss on them from now on, and they are removed from memory by the
    /// background thread soon after.
    pub fn invalidate_tag(&self, tag: &str) -> u64 {
        let invalidation = Invalidation::Tag {
            tag: tag.to_owned(),
        };
        // A tag names no namespace, so applying it cannot fail.
        self.invalidate(&invalidation).unwrap_or(0)
    }

    /// How many entries carry `tag` now, counted in O(1): an upper bound of the live ones.
    /// Until the background thread has caught up it also counts entries that are already
    /// dead another way (expired, killed through another of their tags, or cleared) but not
    /// yet freed; after [`run_pending_tasks`](Self::run_pending_tasks) it is exact.
    pub fn tag_count(&self, tag: &str) -> u64 {
        self.inner.core.tags.count(tag)
    }

    /// Emits `event` with `params` through the rules; returns how many entries it dropped.
    pub fn emit<K, V>(
        &self,
        event: &str,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<u64, StoreError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.invalidate(&Invalidation::Event {
            event: event.to_owned(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        })
    }

    /// Empties the namespace `name` in O(1) (see [`Namespace::clear`](super::Namespace::clear)).
    pub fn clear_namespace(&self, name: &str) -> Result<u64, StoreError> {
        self.invalidate(&Invalidation::Clear {
            namespace: Some(name.to_owned()),
        })
    }

    /// Empties every namespace in O(1) per namespace.
    pub fn clear(&self) -> u64 {
        self.invalidate(&Invalidation::Clear { namespace: None })
            .unwrap_or(0)
    }
}
