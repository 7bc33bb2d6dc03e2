//! Draws benchmark results as SVG charts for `BENCHMARKS.md`.
//!
//! ```text
//! memres-plots bars FILE.md --section TEXT [--table N] --label COL
//!              (--values COL,COL,... | --series COL --value COL)
//!              [--title TEXT] --out FILE.svg
//! memres-plots lines FILE.csv [--title TEXT] --out FILE.svg
//! memres-plots flame FILE.folded [--title TEXT] --out FILE.svg
//! memres-plots top FILE.folded [--n N]
//! memres-plots pprof FILE.folded --out FILE.pb
//! ```
//!
//! `bars` reads the `N`th table (from 1) of the section of a markdown file
//! whose heading contains `TEXT`, and draws one group of horizontal bars
//! per row label: either the numbers of the `--values` columns (a wide
//! table, a column per allocator), or, for a long table (a row per
//! workload and allocator), the `--value` column of each `--series`. The
//! numbers are ratios (`0.97x`, `**1.00**`), so the chart marks parity.
//!
//! `lines` reads `series,seconds,mib` lines (with that header) and draws
//! one line per series: resident memory over time.
//!
//! `flame` and `top` read the folded stacks of memres's profiler
//! (`memres::profile::dump_folded`, C++'s `memres::profile_dump`): a flame
//! graph (inferno), and a table of the N functions (default 20) with the
//! most bytes allocated under them. `pprof` writes them as a pprof profile
//! (`go tool pprof -top FILE.pb`, `pprof -http=: FILE.pb`).

mod chart;
mod pprof;
mod profile;
mod table;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("memres-plots: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) =
        args.split_first().ok_or("expected bars, lines, flame, top or pprof (see the crate's doc)")?;
    let opts = Options::parse(rest)?;
    match command.as_str() {
        "bars" => {
            let text = read(&opts.input)?;
            let section = opts.need("section")?;
            let table = table::find(&text, section, opts.number("table", 1)?)?;
            let label = opts.need("label")?;
            let groups = match (opts.get("values"), opts.get("series"), opts.get("value")) {
                (Some(values), None, None) => table.wide(label, &values.split(',').collect::<Vec<_>>())?,
                (None, Some(series), Some(value)) => table.long(label, series, value)?,
                _ => return Err("give --values, or --series and --value".into()),
            };
            chart::bars(&groups, opts.get("title").unwrap_or(section), opts.need("out")?)
        }
        "lines" => {
            let series = table::samples(&read(&opts.input)?)?;
            chart::lines(&series, opts.get("title").unwrap_or("resident memory"), opts.need("out")?)
        }
        "flame" => {
            let title = opts.get("title").unwrap_or("allocations (bytes)");
            profile::flame(&read(&opts.input)?, title, opts.need("out")?)
        }
        "top" => {
            print!("{}", profile::top(&read(&opts.input)?, opts.number("n", 20)?)?);
            Ok(())
        }
        "pprof" => pprof::write(&read(&opts.input)?, opts.need("out")?),
        other => Err(format!("unknown command {other:?}: expected bars, lines, flame, top or pprof")),
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// The input file and `--name value` pairs.
struct Options {
    input: String,
    pairs: Vec<(String, String)>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let (input, mut rest) = args.split_first().ok_or("expected an input file")?;
        let mut pairs = Vec::new();
        while let Some((name, tail)) = rest.split_first() {
            let name = name.strip_prefix("--").ok_or_else(|| format!("expected an option, found {name:?}"))?;
            let (value, tail) = tail.split_first().ok_or_else(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
            rest = tail;
        }
        Ok(Options { input: input.clone(), pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn need(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: usize) -> Result<usize, String> {
        self.get(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("--{name}: not a number: {v:?}")))
    }
}
