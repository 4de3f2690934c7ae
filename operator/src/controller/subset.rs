//! "Does the live object already say what we would apply?" — the check that lets a reconcile of
//! an unchanged bot write nothing.
//!
//! The live object holds more than we sent (defaults, status, other managers' fields), so the
//! question is containment, not equality: every field of the desired object must be present in
//! the live one with the same value. Lists are compared element by element; a list of named
//! items (containers, env, ports, volumes) may hold extra items added by someone else. Resource
//! quantities compare by value (`0.5` and `500m` are the same CPU).

use serde_json::Value;

/// Whether `live` contains every field of `desired` with an equal value.
pub fn contains(live: &Value, desired: &Value) -> bool {
    contains_at(live, desired, false)
}

fn contains_at(live: &Value, desired: &Value, quantity: bool) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(live), Value::Object(desired)) => desired.iter().all(|(key, want)| {
            let quantity = quantity || matches!(key.as_str(), "limits" | "requests" | "capacity");
            match live.get(key) {
                Some(have) => contains_at(have, want, quantity),
                None => is_empty(want),
            }
        }),
        (Value::Array(live), Value::Array(desired)) => {
            if live.len() == desired.len()
                && live
                    .iter()
                    .zip(desired)
                    .all(|(l, d)| contains_at(l, d, quantity))
            {
                return true;
            }
            // Named items: match by name, tolerating items we did not ask for.
            desired
                .iter()
                .all(|want| match want.get("name").and_then(Value::as_str) {
                    Some(name) => live
                        .iter()
                        .find(|have| have.get("name").and_then(Value::as_str) == Some(name))
                        .is_some_and(|have| contains_at(have, want, quantity)),
                    None => false,
                })
        }
        (Value::Null, want) => is_empty(want),
        (Value::String(have), Value::String(want)) if quantity => {
            have == want
                || matches!((parse_quantity(have), parse_quantity(want)), (Some(a), Some(b)) if (a - b).abs() <= 1e-9 * a.abs().max(1.0))
        }
        (Value::Number(have), Value::Number(want)) => have.as_f64() == want.as_f64(),
        (have, want) => have == want,
    }
}

/// `{}`, `[]`, `""`-free emptiness: what the API server drops instead of storing.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A Kubernetes quantity (`500m`, `1.5Gi`, `2`, `1e3`) as a number.
fn parse_quantity(input: &str) -> Option<f64> {
    let split = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(input.len());
    let (number, suffix) = input.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_added_fields_do_not_count_as_a_difference() {
        let desired = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "bot", "image": "i:1", "env": [{"name": "A", "value": "1"}]}
        ]}}}});
        let live = json!({"metadata": {"uid": "u"}, "status": {"readyReplicas": 1},
            "spec": {"replicas": 1, "revisionHistoryLimit": 10, "template": {"spec": {"containers": [
            {"name": "bot", "image": "i:1", "imagePullPolicy": "IfNotPresent",
             "env": [{"name": "A", "value": "1"}]}
        ]}}}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn a_changed_or_missing_field_is_a_difference() {
        let desired = json!({"spec": {"replicas": 1, "paused": false}});
        assert!(!contains(
            &json!({"spec": {"replicas": 3, "paused": false}}),
            &desired
        ));
        assert!(!contains(&json!({"spec": {"replicas": 1}}), &desired));
        let env = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        assert!(!contains(
            &json!({"env": [{"name": "A", "value": "1"}]}),
            &env
        ));
        assert!(!contains(
            &json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]}),
            &env
        ));
    }

    #[test]
    fn extra_named_items_from_other_managers_are_tolerated() {
        let desired = json!({"env": [{"name": "A", "value": "1"}]});
        let live =
            json!({"env": [{"name": "INJECTED", "value": "x"}, {"name": "A", "value": "1"}]});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn empty_desired_values_match_absent_live_ones() {
        let desired = json!({"metadata": {"annotations": {}}, "spec": {"args": [], "x": null}});
        assert!(contains(&json!({"metadata": {}, "spec": {}}), &desired));
    }

    #[test]
    fn quantities_compare_by_value_only_under_resources() {
        let desired = json!({"resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}});
        let live = json!({"resources": {"requests": {"cpu": "500m", "memory": "1073741824"}}});
        assert!(contains(&live, &desired));
        assert!(!contains(
            &json!({"resources": {"requests": {"cpu": "600m", "memory": "1Gi"}}}),
            &desired
        ));
        // Elsewhere strings are strings.
        assert!(!contains(
            &json!({"value": "500m"}),
            &json!({"value": "0.5"})
        ));
    }
}
