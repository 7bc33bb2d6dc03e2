//! Reading the inputs: markdown tables of a section, and RSS samples.

/// A markdown table: its header cells and its rows' cells (trimmed).
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Bars to draw: a value (or none) per series for each labelled group.
#[derive(Debug, PartialEq)]
pub struct Groups {
    pub series: Vec<String>,
    pub groups: Vec<(String, Vec<Option<f64>>)>,
}

/// Resident memory samples of one series: (seconds, MiB).
pub type Series = (String, Vec<(f64, f64)>);

/// The `n`th table (from 1) under the first heading that contains
/// `section`, up to the next heading of the same or a higher level.
pub fn find(text: &str, section: &str, n: usize) -> Result<Table, String> {
    let lines: Vec<&str> = text.lines().collect();
    let (start, level) = lines
        .iter()
        .enumerate()
        .find_map(|(i, line)| heading_level(line).filter(|_| line.contains(section)).map(|level| (i, level)))
        .ok_or_else(|| format!("no heading contains {section:?}"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|line| heading_level(line).is_some_and(|l| l <= level))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut tables = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in &lines[start + 1..end] {
        if line.trim_start().starts_with('|') {
            current.push(line);
        } else if !current.is_empty() {
            tables.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tables.push(current);
    }
    let found = tables.len();
    let rows = tables
        .into_iter()
        .nth(n.wrapping_sub(1))
        .ok_or_else(|| format!("section {section:?} has {found} tables, not {n}"))?;
    if rows.len() < 2 {
        return Err(format!("table {n} of {section:?} has no separator line"));
    }
    Ok(Table { headers: cells(rows[0]), rows: rows[2..].iter().map(|row| cells(row)).collect() })
}

fn heading_level(line: &str) -> Option<usize> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    (level > 0 && line[level..].starts_with(' ')).then_some(level)
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|cell| cell.trim().replace("**", "")).collect()
}

/// The first number in a cell: `0.97x` and `**1.00**` are 0.97 and 1.0;
/// `1.00x, 0.97x` is 1.0; a cell without one (`—`) is none.
pub fn number(cell: &str) -> Option<f64> {
    let start = cell.find(|c: char| c.is_ascii_digit())?;
    let rest = &cell[start..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Table {
    fn column(&self, name: &str) -> Result<usize, String> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column {name:?}; the columns are {:?}", self.headers))
    }

    fn cell(&self, row: &[String], column: usize) -> String {
        row.get(column).cloned().unwrap_or_default()
    }

    /// A group per row (named by its `label` cell), a series per column
    /// of `values`. Rows whose label cell names a summary (a geometric
    /// mean) are kept: they are part of the result.
    pub fn wide(&self, label: &str, values: &[&str]) -> Result<Groups, String> {
        let label = self.column(label)?;
        let columns = values.iter().map(|v| self.column(v)).collect::<Result<Vec<_>, _>>()?;
        let groups = self
            .rows
            .iter()
            .map(|row| (self.cell(row, label), columns.iter().map(|&c| number(&self.cell(row, c))).collect()))
            .collect();
        Ok(Groups { series: values.iter().map(|v| v.to_string()).collect(), groups })
    }

    /// A group per distinct `label` cell (in the order met), a series per
    /// distinct `series` cell, each bar the row's `value` cell.
    pub fn long(&self, label: &str, series: &str, value: &str) -> Result<Groups, String> {
        let (label, series, value) = (self.column(label)?, self.column(series)?, self.column(value)?);
        let mut names: Vec<String> = Vec::new();
        // Each group's (series, value) bars as met.
        type Bars = Vec<(String, Option<f64>)>;
        let mut groups: Vec<(String, Bars)> = Vec::new();
        for row in &self.rows {
            let (group, name) = (self.cell(row, label), self.cell(row, series));
            if !names.contains(&name) {
                names.push(name.clone());
            }
            let bars = match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, bars)) => bars,
                None => {
                    groups.push((group, Vec::new()));
                    &mut groups.last_mut().expect("just pushed").1
                }
            };
            bars.push((name, number(&self.cell(row, value))));
        }
        let groups = groups
            .into_iter()
            .map(|(group, bars)| {
                let values = names.iter().map(|n| bars.iter().find(|(b, _)| b == n).and_then(|(_, v)| *v)).collect();
                (group, values)
            })
            .collect();
        Ok(Groups { series: names, groups })
    }
}

/// Parses `series,seconds,mib` lines after that header, into one series
/// per name in the order met.
pub fn samples(text: &str) -> Result<Vec<Series>, String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("series,seconds,mib") {
        return Err("expected the header `series,seconds,mib`".into());
    }
    let mut all: Vec<Series> = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || format!("line {}: expected `series,seconds,mib`, found {line:?}", i + 2);
        let mut fields = line.split(',');
        let (Some(name), Some(t), Some(mib), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let point = (t.trim().parse().map_err(|_| bad())?, mib.trim().parse().map_err(|_| bad())?);
        match all.iter_mut().find(|(n, _)| n == name) {
            Some((_, points)) => points.push(point),
            None => all.push((name.to_owned(), vec![point])),
        }
    }
    if all.is_empty() {
        return Err("no samples".into());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\n## Old run\n\n| program | memres time |\n|---|---:|\n| cfrac | 9.99 |\n\n\
        ## The run of today\n\nText.\n\n| program | memres time | jemalloc time |\n|---|---:|---:|\n\
        | cfrac | 0.81 | 1.10 |\n| **geometric mean** | **0.82** | — |\n\n\
        | workload | allocator | time vs bumpalo |\n|---|---|---:|\n| small | bumpalo | 1.00x |\n\
        | small | memres | 0.97x |\n| vec | memres | 0.25x |\n\n### A subsection\n\n| a | b |\n|---|---|\n| x | 1 |\n\n\
        ## Next run\n\n| program | memres time |\n|---|---:|\n| cfrac | 7.77 |\n";

    #[test]
    fn numbers_are_read_from_ratio_cells() {
        assert_eq!(number("0.97x"), Some(0.97));
        assert_eq!(number("**1.00**"), Some(1.0));
        assert_eq!(number("1.00x, 0.97x"), Some(1.0));
        assert_eq!(number("12"), Some(12.0));
        assert_eq!(number("—"), None);
    }

    #[test]
    fn a_wide_table_gives_a_series_per_column() {
        let table = find(DOC, "run of today", 1).unwrap();
        let groups = table.wide("program", &["memres time", "jemalloc time"]).unwrap();
        assert_eq!(groups.series, ["memres time", "jemalloc time"]);
        assert_eq!(
            groups.groups,
            [("cfrac".to_owned(), vec![Some(0.81), Some(1.10)]), ("geometric mean".to_owned(), vec![Some(0.82), None])]
        );
    }

    #[test]
    fn a_long_table_gives_a_series_per_allocator() {
        let table = find(DOC, "run of today", 2).unwrap();
        let groups = table.long("workload", "allocator", "time vs bumpalo").unwrap();
        assert_eq!(groups.series, ["bumpalo", "memres"]);
        assert_eq!(
            groups.groups,
            [("small".to_owned(), vec![Some(1.0), Some(0.97)]), ("vec".to_owned(), vec![None, Some(0.25)])]
        );
    }

    #[test]
    fn a_section_ends_at_the_next_heading_of_its_level() {
        // The subsection's table belongs to the section; the next run's
        // does not.
        assert!(find(DOC, "run of today", 3).is_ok());
        let err = find(DOC, "run of today", 4).unwrap_err();
        assert!(err.contains("has 3 tables"), "{err}");
        assert_eq!(number(&find(DOC, "Old run", 1).unwrap().rows[0][1]), Some(9.99));
    }

    #[test]
    fn bad_inputs_are_errors_that_say_what_is_wrong() {
        assert!(find(DOC, "no such run", 1).unwrap_err().contains("no heading"));
        let table = find(DOC, "run of today", 1).unwrap();
        assert!(table.wide("program", &["glibc time"]).unwrap_err().contains("no column \"glibc time\""));
        assert!(samples("t,mib\n1,2\n").unwrap_err().contains("header"));
        assert!(samples("series,seconds,mib\nmemres,1\n").unwrap_err().contains("line 2"));
    }

    #[test]
    fn samples_are_grouped_by_series_in_order() {
        let s = samples("series,seconds,mib\nmemres,0,1.5\nglibc,0,2\nmemres,0.1,3\n").unwrap();
        assert_eq!(s, [("memres".to_owned(), vec![(0.0, 1.5), (0.1, 3.0)]), ("glibc".to_owned(), vec![(0.0, 2.0)])]);
    }
}
