//! Drawing: grouped ratio bars and RSS lines, as SVG (plotters).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::table::{Groups, Series};

/// Height of one bar, and the space between groups, in pixels.
const BAR: u32 = 13;
const GROUP_GAP: u32 = 12;
const WIDTH: u32 = 960;

fn err(e: impl std::fmt::Debug) -> String {
    format!("drawing failed: {e:?}")
}

/// Draws the series' names and swatches in a box at `position`.
fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

/// One group of horizontal bars per row, one bar per series, on a
/// logarithmic axis: each bar starts at 1.0 (parity) and reaches its value,
/// left when faster or smaller, right when slower or larger (so 0.5x and
/// 2x are as long), with the value at its end.
pub fn bars(groups: &Groups, title: &str, out: &str) -> Result<(), String> {
    let (n, k) = (groups.groups.len(), groups.series.len());
    if n == 0 || k == 0 {
        return Err("nothing to draw: the table has no rows or no series".into());
    }
    let values = || groups.groups.iter().flat_map(|(_, v)| v.iter().flatten().copied()).filter(|&v| v > 0.0);
    let (low, high) = (values().fold(1.0f64, f64::min), values().fold(1.0f64, f64::max));
    // Room each side for the values, and on the right for the legend.
    let (x_min, x_max) = (low / 1.4, high * 2.2);
    let plot_height = n as u32 * (k as u32 * BAR + GROUP_GAP);
    let label_width = groups.groups.iter().map(|(g, _)| g.len()).max().unwrap_or(0) as u32 * 7 + 16;
    let root = SVGBackend::new(out, (WIDTH, plot_height + 90)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(label_width)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|x| format!("{x:.2}x"))
        .x_desc("ratio, logarithmic (lower is better; 1.0 = parity)")
        .draw()
        .map_err(err)?;
    // A group's bars share its unit of height, less a margin each side.
    let pad = f64::from(GROUP_GAP) / 2.0 / f64::from(k as u32 * BAR + GROUP_GAP);
    let step = (1.0 - 2.0 * pad) / k as f64;
    let font = ("sans-serif", 10).into_font();
    for (j, name) in groups.series.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        let bars = groups.groups.iter().enumerate().filter_map(move |(i, (_, v))| {
            let top = (n - i) as f64 - pad - j as f64 * step;
            v[j].filter(|&value| value > 0.0).map(|value| (value, top))
        });
        chart
            .draw_series(
                bars.clone()
                    .map(|(value, top)| Rectangle::new([(1.0, top - step * 0.9), (value, top)], color.filled())),
            )
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart
            .draw_series(bars.map(|(value, top)| {
                let side = if value < 1.0 { HPos::Right } else { HPos::Left };
                let style = TextStyle::from(font.clone()).pos(Pos::new(side, VPos::Center));
                Text::new(format!(" {value:.2} "), (value, top - step * 0.45), style)
            }))
            .map_err(err)?;
    }
    chart.draw_series(LineSeries::new([(1.0, 0.0), (1.0, n as f64)], BLACK.stroke_width(1))).map_err(err)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    // The group names, right-aligned beside the axis.
    let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (group, _)) in groups.groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(x_min, (n - i) as f64 - 0.5));
        root.draw(&Text::new(group.as_str(), (x - 6, y), style.clone())).map_err(err)?;
    }
    root.present().map_err(err)
}

/// One line per series: MiB resident over seconds.
pub fn lines(series: &[Series], title: &str, out: &str) -> Result<(), String> {
    let points = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let t_max = points().map(|(t, _)| t).fold(0.0f64, f64::max).max(1e-3);
    let mib_max = points().map(|(_, m)| m).fold(0.0f64, f64::max).max(1e-3) * 1.1;
    let root = SVGBackend::new(out, (WIDTH, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..t_max, 0f64..mib_max)
        .map_err(err)?;
    chart.configure_mesh().x_desc("seconds").y_desc("resident MiB").draw().map_err(err)?;
    for (j, (name, p)) in series.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        chart
            .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> String {
        std::env::temp_dir().join(format!("memres-plots-{}-{name}", std::process::id())).display().to_string()
    }

    #[test]
    fn bars_name_every_group_series_and_value() {
        let groups = Groups {
            series: vec!["memres".into(), "jemalloc".into()],
            groups: vec![("cfrac".into(), vec![Some(0.81), Some(1.1)]), ("rptest".into(), vec![Some(0.91), None])],
        };
        let out = temp("bars.svg");
        bars(&groups, "mimalloc-bench", &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        assert!(svg.starts_with("<svg"), "an SVG document");
        for text in ["mimalloc-bench", "cfrac", "rptest", "memres", "jemalloc", "0.81", "1.10", "0.91"] {
            assert!(svg.contains(text), "the chart shows {text:?}");
        }
        // Three bars (one value is missing) and the legend's two swatches:
        // the coloured rectangles (the rest are white or unfilled).
        let coloured = svg
            .split("<rect")
            .skip(1)
            .map(|r| &r[..r.find('>').unwrap_or(r.len())])
            .filter(|r| !r.contains("fill=\"#FFFFFF\"") && !r.contains("fill=\"none\""))
            .count();
        assert_eq!(coloured, 3 + 2);
    }

    #[test]
    fn lines_name_every_series() {
        let series = vec![("memres".to_owned(), vec![(0.0, 1.0), (1.0, 3.0)]), ("glibc".to_owned(), vec![(0.0, 2.0)])];
        let out = temp("lines.svg");
        lines(&series, "RSS of larson", &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        for text in ["RSS of larson", "memres", "glibc", "seconds", "resident MiB"] {
            assert!(svg.contains(text), "the chart shows {text:?}");
        }
    }

    #[test]
    fn an_empty_table_is_an_error() {
        let groups = Groups { series: vec![], groups: vec![] };
        assert!(bars(&groups, "t", &temp("empty.svg")).unwrap_err().contains("nothing to draw"));
    }
}
