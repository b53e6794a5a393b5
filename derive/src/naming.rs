//! Names the derive makes up: a variant's topic segment in snake case.

/// `name` in snake case, the way `heck` and serde's `rename_all =
/// "snake_case"` split words: `PhaseChanged` → `phase_changed`,
/// `HTTPRequest` → `http_request`, `Retry2Later` → `retry2_later`.
///
/// A word starts at an uppercase letter that follows a lowercase letter or a
/// digit, and at the last uppercase letter of a run that a lowercase letter
/// follows. Existing underscores are kept, and none is doubled.
pub(crate) fn snake_case(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
            let next = chars.get(i + 1).copied();
            let after_word = prev.is_some_and(|p| p.is_lowercase() || p.is_numeric());
            let ends_acronym =
                prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase);
            if (after_word || ends_acronym) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn splits_words() {
        let cases = [
            ("Created", "created"),
            ("PhaseChanged", "phase_changed"),
            ("QueryExecuted", "query_executed"),
            ("RolledBack", "rolled_back"),
            ("HTTPRequest", "http_request"),
            ("GetHTTP", "get_http"),
            ("Retry2Later", "retry2_later"),
            ("V2", "v2"),
            ("A", "a"),
            ("already_snake", "already_snake"),
            ("Mixed_Case", "mixed_case"),
            ("r#Type", "type"),
            ("Über", "über"),
        ];
        for (name, snake) in cases {
            assert_eq!(snake_case(name), snake, "{name}");
        }
    }
}
