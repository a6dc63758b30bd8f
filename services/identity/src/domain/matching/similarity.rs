//! String similarity measures used by the field comparators: Jaro, Jaro-Winkler, Levenshtein
//! and optimal string alignment (Levenshtein plus adjacent transpositions), and Soundex for
//! blocking keys. They work on slices of any comparable unit (`char`, or bytes of ASCII text)
//! prepared once per record, and allocate nothing
//! for strings up to [`STACK_LEN`] characters, because they run once per candidate pair.

/// Strings up to this many characters are compared without allocating.
pub const STACK_LEN: usize = 64;

/// Jaro similarity in [0, 1]; 1 for two empty strings.
pub fn jaro<T: Eq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a.len() <= STACK_LEN && b.len() <= STACK_LEN {
        let mut a_flags = [false; STACK_LEN];
        let mut b_flags = [false; STACK_LEN];
        jaro_with(a, b, &mut a_flags[..a.len()], &mut b_flags[..b.len()])
    } else {
        let mut a_flags = vec![false; a.len()];
        let mut b_flags = vec![false; b.len()];
        jaro_with(a, b, &mut a_flags, &mut b_flags)
    }
}

fn jaro_with<T: Eq>(a: &[T], b: &[T], a_flags: &mut [bool], b_flags: &mut [bool]) -> f64 {
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut matches = 0usize;
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_flags[j] && b[j] == *ca {
                a_flags[i] = true;
                b_flags[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, ca) in a.iter().enumerate() {
        if !a_flags[i] {
            continue;
        }
        while !b_flags[j] {
            j += 1;
        }
        if *ca != b[j] {
            transpositions += 1;
        }
        j += 1;
    }
    let m = matches as f64;
    let t = (transpositions / 2) as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// Jaro-Winkler similarity in [0, 1]: Jaro, raised for a common prefix of up to 4 characters
/// (scale 0.1) when Jaro is above 0.7, as Winkler defined it.
pub fn jaro_winkler<T: Eq>(a: &[T], b: &[T]) -> f64 {
    let j = jaro(a, b);
    if j <= 0.7 {
        return j;
    }
    let prefix = a
        .iter()
        .zip(b.iter())
        .take(4)
        .take_while(|(x, y)| x == y)
        .count();
    j + 0.1 * prefix as f64 * (1.0 - j)
}

/// Levenshtein distance: insertions, deletions and substitutions.
pub fn levenshtein<T: Eq>(a: &[T], b: &[T]) -> usize {
    edit_distance(a, b, false)
}

/// Optimal string alignment distance: Levenshtein where swapping two adjacent characters
/// costs one edit (typing errors in numbers and dates are often such swaps).
pub fn osa_distance<T: Eq>(a: &[T], b: &[T]) -> usize {
    edit_distance(a, b, true)
}

/// The optimal string alignment distance of `a` and `b` when it is at most `max`, else
/// `None`. Distances up to one (the usual question: "one typing error?") take a linear scan
/// instead of the dynamic programme.
pub fn osa_within<T: Eq>(a: &[T], b: &[T], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    if max <= 1 {
        return within_one(a, b).filter(|d| *d <= max);
    }
    Some(osa_distance(a, b)).filter(|d| *d <= max)
}

/// The OSA distance when it is 0 or 1.
fn within_one<T: Eq>(a: &[T], b: &[T]) -> Option<usize> {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let Some(i) = long.iter().zip(short).position(|(x, y)| x != y) else {
        // One is a prefix of the other.
        return match long.len() - short.len() {
            0 => Some(0),
            1 => Some(1),
            _ => None,
        };
    };
    match long.len() - short.len() {
        0 => {
            let substituted = long[i + 1..] == short[i + 1..];
            let swapped = i + 1 < long.len()
                && long[i] == short[i + 1]
                && long[i + 1] == short[i]
                && long[i + 2..] == short[i + 2..];
            (substituted || swapped).then_some(1)
        }
        1 => (long[i + 1..] == short[i..]).then_some(1),
        _ => None,
    }
}

fn edit_distance<E: Eq>(a: &[E], b: &[E], transpositions: bool) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let width = b.len() + 1;
    if a.len() <= STACK_LEN && b.len() <= STACK_LEN {
        // Distances of strings this short fit in a byte: small rows, cheap to clear.
        let mut rows = [[0u8; STACK_LEN + 1]; 3];
        let [r0, r1, r2] = &mut rows;
        usize::from(edit_rows(
            a,
            b,
            transpositions,
            &mut r0[..width],
            &mut r1[..width],
            &mut r2[..width],
        ))
    } else {
        let (mut r0, mut r1, mut r2) = (vec![0; width], vec![0; width], vec![0; width]);
        edit_rows(a, b, transpositions, &mut r0, &mut r1, &mut r2)
    }
}

/// The dynamic programme over three rows: two rows back (for transpositions), the previous
/// row and the current one.
fn edit_rows<'r, E: Eq, T>(
    a: &[E],
    b: &[E],
    transpositions: bool,
    mut before: &'r mut [T],
    mut previous: &'r mut [T],
    mut current: &'r mut [T],
) -> T
where
    T: Copy + Ord + std::ops::Add<Output = T> + From<u8> + TryFrom<usize>,
{
    let one = T::from(1);
    let count = |n: usize| T::try_from(n).unwrap_or(T::from(u8::MAX));
    for (j, cell) in previous.iter_mut().enumerate() {
        *cell = count(j);
    }
    for i in 1..=a.len() {
        current[0] = count(i);
        for j in 1..=b.len() {
            let cost = T::from(u8::from(a[i - 1] != b[j - 1]));
            let mut best = (previous[j] + one)
                .min(current[j - 1] + one)
                .min(previous[j - 1] + cost);
            if transpositions && i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + one);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// American Soundex code of the letters of `s` (other characters skipped): the first letter
/// and three digits, `""` when `s` has no ASCII letter.
pub fn soundex(s: &str) -> String {
    fn code(c: char) -> u8 {
        match c {
            'b' | 'f' | 'p' | 'v' => b'1',
            'c' | 'g' | 'j' | 'k' | 'q' | 's' | 'x' | 'z' => b'2',
            'd' | 't' => b'3',
            'l' => b'4',
            'm' | 'n' => b'5',
            'r' => b'6',
            _ => 0,
        }
    }
    let mut letters = s
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase());
    let Some(first) = letters.next() else {
        return String::new();
    };
    let mut out = String::with_capacity(4);
    out.push(first.to_ascii_uppercase());
    let mut last = code(first);
    for c in letters {
        if out.len() == 4 {
            break;
        }
        let d = code(c);
        if d != 0 && d != last {
            out.push(char::from(d));
        }
        // 'h' and 'w' do not separate two equal codes; vowels do.
        if c != 'h' && c != 'w' {
            last = d;
        }
    }
    while out.len() < 4 {
        out.push('0');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn textbook_values() {
        let jw = jaro_winkler(&chars("martha"), &chars("marhta"));
        assert!((jw - 0.9611).abs() < 1e-4, "{jw}");
        let jw = jaro_winkler(&chars("dixon"), &chars("dicksonx"));
        assert!((jw - 0.8133).abs() < 1e-4, "{jw}");
        assert_eq!(levenshtein(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(osa_distance(&chars("19860810"), &chars("19868010")), 1);
        assert_eq!(levenshtein(&chars("19860810"), &chars("19868010")), 2);
        assert_eq!(soundex("Robert"), "R163");
        assert_eq!(soundex("Rupert"), "R163");
        assert_eq!(soundex("Ashcraft"), "A261");
        assert_eq!(soundex("Tymczak"), "T522");
        assert_eq!(soundex("Pfister"), "P236");
        assert_eq!(soundex("  "), "");
    }

    proptest! {
        // strsim is the oracle: the same definitions, written independently.
        #[test]
        fn agrees_with_strsim(a in "[a-e ]{0,12}", b in "[a-e ]{0,12}") {
            let (ca, cb) = (chars(&a), chars(&b));
            prop_assert!((jaro(&ca, &cb) - strsim::jaro(&a, &b)).abs() < 1e-9);
            prop_assert!((jaro_winkler(&ca, &cb) - strsim::jaro_winkler(&a, &b)).abs() < 1e-9);
            prop_assert_eq!(levenshtein(&ca, &cb), strsim::levenshtein(&a, &b));
            prop_assert_eq!(osa_distance(&ca, &cb), strsim::osa_distance(&a, &b));
        }

        #[test]
        fn bounded_distance_agrees(a in "[ab1]{0,7}", b in "[ab1]{0,7}", max in 0usize..3) {
            let (ca, cb) = (chars(&a), chars(&b));
            let d = osa_distance(&ca, &cb);
            prop_assert_eq!(osa_within(&ca, &cb, max), (d <= max).then_some(d));
        }

        #[test]
        fn long_strings_take_the_heap_path(a in "[ab]{60,90}", b in "[ab]{60,90}") {
            let (ca, cb) = (chars(&a), chars(&b));
            prop_assert!((jaro_winkler(&ca, &cb) - strsim::jaro_winkler(&a, &b)).abs() < 1e-9);
            prop_assert_eq!(osa_distance(&ca, &cb), strsim::osa_distance(&a, &b));
        }

        #[test]
        fn similarity_is_symmetric_and_bounded(a in "\\PC{0,10}", b in "\\PC{0,10}") {
            let (ca, cb) = (chars(&a), chars(&b));
            let (x, y) = (jaro_winkler(&ca, &cb), jaro_winkler(&cb, &ca));
            prop_assert!((0.0..=1.0).contains(&x));
            prop_assert!((x - y).abs() < 1e-9);
            prop_assert_eq!(levenshtein(&ca, &cb), levenshtein(&cb, &ca));
        }
    }
}
