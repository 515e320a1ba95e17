//! Nearest known name for a misspelt property, so that a typo costs one reading of the error
//! instead of a search through two configuration references.

/// Folds the differences people make when they half-remember a name: case, and `_` or `-` where
/// Kafka writes `.` (`COMMIT_INTERVAL_MS`, `commit-interval-ms`).
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | '-' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The candidate closest to `input`, if one is close enough to be what was meant.
///
/// A name equal to `input` after [`fold`] wins outright. Otherwise the closest by optimal string
/// alignment distance (a transposition counts as one edit), ties broken by Jaro-Winkler, which
/// favours a shared beginning; the distance may be at most a quarter of the input's length, between
/// one and three edits, so that short unrelated names are not offered as corrections.
pub(crate) fn nearest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let folded = fold(input);
    let length = input.chars().count();
    let limit = (length / 4).clamp(1, 3);
    let mut best: Option<(usize, f64, &'a str)> = None;
    for candidate in candidates {
        // The distance is at least the difference in length, and folding keeps the length: most
        // names are ruled out without computing anything.
        if candidate == input || candidate.chars().count().abs_diff(length) > limit {
            continue;
        }
        if fold(candidate) == folded {
            return Some(candidate);
        }
        let distance = strsim::osa_distance(input, candidate);
        let similarity = strsim::jaro_winkler(input, candidate);
        let better = match best {
            None => true,
            Some((d, s, _)) => distance < d || (distance == d && similarity > s),
        };
        if better {
            best = Some((distance, similarity, candidate));
        }
    }
    best.filter(|(distance, _, _)| *distance <= limit)
        .map(|(_, _, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    const NAMES: &[&str] = &[
        "commit.interval.ms",
        "fetch.wait.max.ms",
        "fetch.max.wait.ms",
        "poll.ms",
        "acks",
    ];

    #[test]
    fn one_edit_away_is_suggested() {
        assert_eq!(
            nearest("comit.interval.ms", NAMES.iter().copied()),
            Some("commit.interval.ms")
        );
        assert_eq!(
            nearest("fetch.wait.max.msx", NAMES.iter().copied()),
            Some("fetch.wait.max.ms")
        );
    }

    #[test]
    fn case_and_separators_do_not_count() {
        assert_eq!(
            nearest("COMMIT_INTERVAL_MS", NAMES.iter().copied()),
            Some("commit.interval.ms")
        );
    }

    #[test]
    fn far_names_are_not_offered() {
        assert_eq!(nearest("xyz", NAMES.iter().copied()), None);
        assert_eq!(nearest("completely.different", NAMES.iter().copied()), None);
    }
}
