//! The profiler's folded stacks (`memres::profile::folded`): a flame graph
//! (inferno) and a table of the functions that allocated most.

use std::collections::HashMap;

/// Parses folded lines `frame;frame;... bytes` into (frames, bytes).
pub fn parse(text: &str) -> Result<Vec<(Vec<&str>, u64)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let (stack, bytes) =
                line.rsplit_once(' ').ok_or_else(|| format!("line {}: no count after the stack", i + 1))?;
            let bytes = bytes.trim().parse().map_err(|_| format!("line {}: {bytes:?} is not a count", i + 1))?;
            Ok((stack.split(';').collect(), bytes))
        })
        .collect()
}

/// Writes the flame graph of `text` (folded stacks) as SVG to `out`.
pub fn flame(text: &str, title: &str, out: &str) -> Result<(), String> {
    parse(text)?;
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "bytes".to_owned();
    let file = std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?;
    inferno::flamegraph::from_lines(&mut options, text.lines(), std::io::BufWriter::new(file))
        .map_err(|e| format!("flame graph: {e}"))
}

/// The `n` functions that allocated most, as a markdown table: bytes under
/// each (its stacks' total, each stack counted once) and bytes it
/// allocated itself (where it is the innermost frame), with shares.
pub fn top(text: &str, n: usize) -> Result<String, String> {
    let stacks = parse(text)?;
    let all: u64 = stacks.iter().map(|(_, b)| b).sum();
    let mut total: HashMap<&str, u64> = HashMap::new();
    let mut own: HashMap<&str, u64> = HashMap::new();
    for (frames, bytes) in &stacks {
        let mut seen: Vec<&str> = Vec::new();
        for &frame in frames {
            if !seen.contains(&frame) {
                seen.push(frame);
                *total.entry(frame).or_default() += bytes;
            }
        }
        if let Some(&inner) = frames.last() {
            *own.entry(inner).or_default() += bytes;
        }
    }
    let mut rows: Vec<(&str, u64)> = total.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let share = |b: u64| if all == 0 { 0.0 } else { 100.0 * b as f64 / all as f64 };
    let mut out = String::from("| function | bytes under it | share | its own | share |\n|---|---:|---:|---:|---:|\n");
    for (name, bytes) in rows.into_iter().take(n) {
        let mine = own.get(name).copied().unwrap_or(0);
        out += &format!("| `{name}` | {bytes} | {:.1}% | {mine} | {:.1}% |\n", share(bytes), share(mine));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLDED: &str = "Monotonic;main;handle;parse_headers 600\nMonotonic;main;handle;rank_words 300\n\
                          Monotonic;main;rank_words 100\n";

    #[test]
    fn the_flame_graph_names_every_function() {
        let out = std::env::temp_dir().join(format!("memres-plots-{}-flame.svg", std::process::id()));
        let out = out.to_str().unwrap();
        flame(FOLDED, "request arena", out).unwrap();
        let svg = std::fs::read_to_string(out).unwrap();
        std::fs::remove_file(out).unwrap();
        for name in ["request arena", "parse_headers", "rank_words", "handle", "Monotonic"] {
            assert!(svg.contains(name), "the flame graph names {name}");
        }
    }

    #[test]
    fn the_table_counts_each_stack_once_per_function() {
        let table = top(FOLDED, 10).unwrap();
        assert!(table.contains("| `main` | 1000 | 100.0% | 0 | 0.0% |"), "{table}");
        assert!(table.contains("| `rank_words` | 400 | 40.0% | 400 | 40.0% |"), "{table}");
        assert!(table.contains("| `parse_headers` | 600 | 60.0% | 600 | 60.0% |"), "{table}");
        assert_eq!(top(FOLDED, 2).unwrap().lines().count(), 2 + 2, "a header, a rule and two rows");
    }

    #[test]
    fn a_line_without_a_count_is_an_error() {
        assert!(parse("a;b;c\n").unwrap_err().contains("line 1"));
        assert!(parse("a;b x\n").unwrap_err().contains("not a count"));
    }
}
