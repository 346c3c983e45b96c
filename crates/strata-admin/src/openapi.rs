//! `GET /openapi.json`: the API described in OpenAPI 3.1, written out by hand (the routes
//! are few and stable; a test checks that every path and method described is served).

use serde_json::{json, Value};

/// A response pointing at a schema.
fn answer(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|code| {
            let what = match *code {
                "400" => "a malformed or ambiguous request",
                "401" => "a missing or wrong token",
                "403" => "the read-only token on a route that changes something",
                "404" => "an unknown namespace, event or scope",
                "408" => "a body that did not arrive within body_timeout",
                "413" => "a body larger than max_body",
                _ => "an error",
            };
            (code.to_string(), answer(what, "Error"))
        })
        .collect()
}

fn operation(summary: &str, ok: Value, error_codes: &[&str]) -> Value {
    let mut responses = errors(error_codes);
    responses.insert("200".into(), ok);
    json!({ "summary": summary, "responses": responses })
}

fn ns_param() -> Value {
    json!({ "name": "ns", "in": "path", "required": true, "schema": { "type": "string" } })
}

/// The document.
pub(crate) fn document() -> Value {
    let read = ["401"];
    // Every route reads its body within max_body and body_timeout.
    let change = ["400", "401", "403", "404", "408", "413"];
    let mut invalidate = operation(
        "Drop entries by key, prefix, glob pattern, tag or event; answers how many went",
        answer("what was dropped", "Invalidated"),
        &change,
    );
    invalidate["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Invalidate" } } }
    });
    let mut warm_responses = errors(&change);
    warm_responses.insert(
        "202".into(),
        answer("started; GET /warm follows the jobs", "WarmStarted"),
    );
    let mut warm = json!({
        "summary": "Start the warming jobs of a scope in the background",
        "responses": warm_responses,
    });
    warm["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["scope"], "additionalProperties": false,
            "properties": { "scope": { "type": "string", "example": "reference" } } } } }
    });
    let mut top = operation(
        "The hottest keys of a namespace (approximate, sampled)",
        answer("the keys", "Object"),
        &["400", "401", "404"],
    );
    top["parameters"] = json!([ns_param(), {
        "name": "n", "in": "query", "required": false, "schema": { "type": "integer", "default": 10 }
    }]);
    let mut clear_ns = operation(
        "Empty one namespace",
        answer("how many entries it held", "Object"),
        &change,
    );
    clear_ns["parameters"] = json!([ns_param()]);
    let mut clear = operation(
        "Empty every namespace (no body, or {}), or the one the body names",
        answer("how many entries they held", "Object"),
        &change,
    );
    clear["requestBody"] = json!({
        "required": false,
        "description": "Read as JSON whatever its Content-Type.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Clear" } } }
    });
    let mut health = operation(
        "ok, degraded (alerts active) or down; no token needed",
        answer("the status", "Health"),
        &[],
    );
    health["responses"]["503"] = answer("down", "Health");
    health["security"] = json!([]);
    let metrics = json!({
        "summary": "Prometheus text exposition, labelled by namespace; no token needed",
        "security": [],
        "responses": { "200": { "description": "the metrics (OpenMetrics text)",
            "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } }
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "strata admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Stats, health, configuration, metrics, alerts, clear, invalidate and warm for a strata cache."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/health": { "get": health },
            "/metrics": { "get": metrics },
            "/stats": { "get": operation("Figures in total and per namespace, and the server's", answer("the figures", "Stats"), &read) },
            "/info": { "get": operation("The configuration in effect (secrets hidden) and versions", answer("the configuration", "Object"), &read) },
            "/alerts": { "get": operation("Active alerts", answer("the alerts", "Object"), &read) },
            "/namespaces/{ns}/top": { "get": top },
            "/namespaces/{ns}/clear": { "post": clear_ns },
            "/clear": { "post": clear },
            "/invalidate": { "post": invalidate },
            "/warm": {
                "get": operation("Every warming job's status and the scopes", answer("the jobs", "Object"), &read),
                "post": warm
            },
            "/openapi.json": { "get": operation("This document", answer("OpenAPI 3.1", "Object"), &read) }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "The admin token opens every route; the read-only token the GET routes." } },
            "schemas": {
                "Object": { "type": "object" },
                "Error": { "type": "object", "required": ["error", "detail"], "properties": {
                    "error": { "type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "request_timeout", "payload_too_large", "internal"] },
                    "detail": { "type": "string" } } },
                "Health": { "type": "object", "required": ["status", "reasons"], "properties": {
                    "status": { "type": "string", "enum": ["ok", "degraded", "down"] },
                    "reasons": { "type": "array", "items": { "type": "string" } } } },
                "Stats": {
                    "type": "object", "required": ["uptime_seconds", "total", "loads", "max_bytes", "namespaces"],
                    "properties": {
                        "uptime_seconds": { "type": "number" },
                        "total": { "type": "object", "description": "hits, misses, hit_ratio, ... summed over namespaces" },
                        "loads": { "type": "object" },
                        "max_bytes": { "type": "integer", "description": "the memory budget" },
                        "namespaces": { "type": "object", "additionalProperties": { "type": "object" } },
                        "server": { "$ref": "#/components/schemas/ServerStats" },
                        "redis": { "$ref": "#/components/schemas/TierStats" } } },
                "TierStats": {
                    "type": "object",
                    "description": "The shared tier's figures (strata-redis: link, Redis lookups, the invalidation log, the outage queue); absent without one.",
                    "properties": {
                        "link_up": { "type": "boolean" }, "log_following": { "type": "boolean" },
                        "l2_hits": { "type": "integer" }, "l2_misses": { "type": "integer" },
                        "l2_errors": { "type": "integer" }, "l2_corrupt": { "type": "integer" },
                        "l2_lookup_micros": { "type": "integer" }, "l2_lookups": { "type": "integer" },
                        "writes_sent": { "type": "integer" }, "writes_refused": { "type": "integer" },
                        "invalidations_sent": { "type": "integer" }, "invalidations_received": { "type": "integer" },
                        "invalidations_replayed": { "type": "integer" }, "gaps": { "type": "integer" },
                        "queue_depth": { "type": "integer" }, "queue_overflows": { "type": "integer" },
                        "jobs_dropped": { "type": "integer" },
                        "log_lag": { "type": "array", "items": { "type": "integer" },
                            "description": "Per partition of the log, entries not read yet (sampled about once a second)" } } },
                "ServerStats": {
                    "type": "object",
                    "description": "The figures of the server beside the API (strata serve's Redis port); absent without one.",
                    "properties": {
                        "connected_clients": { "type": "integer", "description": "clients connected now" },
                        "connections_received": { "type": "integer", "description": "connections accepted since start, refused ones included" },
                        "rejected_connections": { "type": "integer", "description": "connections refused because max_clients were connected" },
                        "commands_processed": { "type": "integer", "description": "commands run since start" },
                        "client_buffer_bytes": { "type": "integer", "description": "bytes held by all clients' buffers now" },
                        "client_buffer_limit": { "type": "integer", "description": "the bound on client_buffer_bytes (0 for none)" },
                        "evicted_clients": { "type": "integer", "description": "clients closed because the buffers of all clients passed their bound" } } },
                "Clear": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "namespace": { "type": "string", "description": "only this namespace (404 if there is none)" } } },
                "Invalidate": {
                    "type": "object", "additionalProperties": false,
                    "description": "Exactly one of key, prefix, pattern, tag, event. namespace applies to key, prefix and pattern (every namespace without it); params to event.",
                    "properties": {
                        "key": { "type": "string" }, "prefix": { "type": "string" },
                        "pattern": { "type": "string", "description": "a glob, Redis MATCH syntax" },
                        "tag": { "type": "string" }, "event": { "type": "string" },
                        "params": { "type": "object", "additionalProperties": { "type": "string" } },
                        "namespace": { "type": "string" } } },
                "Invalidated": { "type": "object", "required": ["dropped", "exact"], "properties": {
                    "dropped": { "type": "integer" },
                    "exact": { "type": "boolean", "description": "false for a tag (an upper bound) or an event (a sum of its parts)" },
                    "invalidation": { "type": "object" } } },
                "WarmStarted": { "type": "object", "properties": {
                    "scope": { "type": "string" }, "jobs": { "type": "array", "items": { "type": "string" } } } }
            }
        }
    })
}
