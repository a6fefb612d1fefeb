//! "Did you mean …?" suggestions for misspelled names.

/// The known name closest to `unknown`, if it is close enough to be a typo
/// (an edit distance of at most a third of its length, and at least 1).
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_only_near_names() {
        assert_eq!(closest("netwrk", ["net", "network", "env"]), Some("network"));
        assert_eq!(closest("raed_file", ["read_file", "write_file"]), Some("read_file"));
        assert_eq!(closest("zzz", ["read_file"]), None);
    }
}
