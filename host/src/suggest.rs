//! "Did you mean …?" suggestions for misspelled names.

/// Jaro-Winkler similarity above which a name counts as a likely typo;
/// it rewards a shared prefix, as in `netwrk` for `net`.
const MIN_SIMILARITY: f64 = 0.8;

/// The known name most similar to `unknown`, if it is close enough to be a
/// typo: a small edit distance (at most a third of the name, and at least 1)
/// or a high Jaro-Winkler similarity.
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .filter(|k| {
            strsim::damerau_levenshtein(unknown, k) <= (k.len() / 3).max(1)
                || strsim::jaro_winkler(unknown, k) >= MIN_SIMILARITY
        })
        .max_by(|a, b| strsim::jaro_winkler(unknown, a).total_cmp(&strsim::jaro_winkler(unknown, b)))
}

/// ` (did you mean `x`?)` for the closest known name, to append to a message.
pub fn did_you_mean<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(unknown, known).map(|k| format!(" (did you mean `{k}`?)"))
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_only_near_names() {
        assert_eq!(closest("netwrk", ["net", "network", "env"]), Some("network"));
        assert_eq!(closest("raed_file", ["read_file", "write_file"]), Some("read_file"));
        assert_eq!(closest("netwrk", ["approval", "net", "env"]), Some("net"));
        assert_eq!(closest("zzz", ["read_file"]), None);
        assert_eq!(
            closest("colour", ["approval", "timeout_ms", "memory_mb", "max_output_kb"]),
            None
        );
    }
}
