//! Names of objects, fields and streams: the safe-name rule every stream name must pass before
//! it reaches a URL or a path, and "did you mean" suggestions for names that do not exist.

/// Longest stream name accepted: a file name must fit in 255 bytes on every common filesystem.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a stream name is refused by [`check_safe_name`], or `None` when it passes.
///
/// The rule is Salesforce's own for API names (`Account`, `Score__c`, `ns__Thing__History`):
/// ASCII letters, digits and underscores, starting with a letter or an underscore (mapped
/// streams may start with one). Such a name cannot hold `/`, `\`, `..`, `%`, `?` or `#`, so it
/// can be put in a REST URL path and joined onto the output folder as one plain component.
pub fn check_safe_name(name: &str) -> Option<&'static str> {
    let Some(first) = name.chars().next() else {
        return Some("it is empty");
    };
    if name.len() > MAX_NAME_BYTES {
        return Some("it is longer than 255 characters");
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Some("it must start with a letter or an underscore");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("only letters, digits and underscores are allowed");
    }
    None
}

/// Up to three names closest to `written` (case-insensitive edit distance), nearest first.
pub fn closest(written: &str, candidates: &[String]) -> Vec<String> {
    let w = written.to_ascii_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c.clone()).collect()
}

/// `"; did you mean A or B?"` for suggestions, empty for none.
pub fn did_you_mean(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        [init @ .., last] => format!("; did you mean {} or {last}?", init.join(", ")),
    }
}

/// Levenshtein distance.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_api_names_are_safe_and_paths_are_not() {
        for ok in [
            "Account",
            "Score__c",
            "ns__Thing__History",
            "person",
            "_private",
        ] {
            assert_eq!(check_safe_name(ok), None, "{ok}");
        }
        let refused = [
            (
                "../../../../services/data/v62.0/sobjects/Account",
                "it must start with a letter or an underscore",
            ),
            (
                "Account/../../x",
                "only letters, digits and underscores are allowed",
            ),
            (
                "Account..",
                "only letters, digits and underscores are allowed",
            ),
            ("a b", "only letters, digits and underscores are allowed"),
            (
                "Acc%2Fount",
                "only letters, digits and underscores are allowed",
            ),
            ("Zoë", "only letters, digits and underscores are allowed"),
            ("1Account", "it must start with a letter or an underscore"),
            ("", "it is empty"),
        ];
        for (name, why) in refused {
            assert_eq!(check_safe_name(name), Some(why), "{name}");
        }
        assert_eq!(
            check_safe_name(&"a".repeat(256)),
            Some("it is longer than 255 characters")
        );
    }

    #[test]
    fn suggestions_are_the_nearest_names() {
        let names: Vec<String> = ["Account", "Contact", "Lead", "Opportunity"]
            .map(String::from)
            .to_vec();
        assert_eq!(closest("Acount", &names), vec!["Account"]);
        assert_eq!(closest("account", &names), vec!["Account"]);
        assert!(closest("Zebra", &names).is_empty());
        assert_eq!(
            did_you_mean(&closest("Contcat", &names)),
            "; did you mean Contact?"
        );
        assert_eq!(
            did_you_mean(&["A".into(), "B".into(), "C".into()]),
            "; did you mean A, B or C?"
        );
    }
}
