//! The report's plots, as SVG strings (plotters' SVG backend: text stays text, no fonts needed).
//!
//! Every plot is [`WIDTH`] × [`HEIGHT`] pixels: the data on the left, [`PLOT_WIDTH`] wide, and
//! the legend to its right, outside the data, listing the series under their families (see
//! [`super::palette`]). An axis is logarithmic where its values span more than [`DECADES`]
//! from least to most.

use echo_server::Family;
use hdrhistogram::Histogram;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::palette::{Marker, Style};

/// Width of every plot, pixels.
pub const WIDTH: u32 = 1100;

/// Height of every plot, pixels.
pub const HEIGHT: u32 = 520;

/// Width of the plot area; the legend has the rest, to its right.
pub const PLOT_WIDTH: u32 = 820;

/// Largest over smallest value from which an axis is drawn logarithmic: the values span
/// decades, and on a linear axis the small ones would lie flat on it.
pub const DECADES: f64 = 30.0;

/// A named series of (x, y) points.
pub struct Series {
    /// Server name (and, where a server has several series, what tells them apart).
    pub name: String,
    /// Colour, marker and family, from the registry.
    pub style: Style,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

type Result<T> = std::result::Result<T, String>;

/// A drawing area of the SVG backend.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// A plot: `draw` gets the plot area and the legend's area beside it.
fn with_svg(draw: impl FnOnce(&Area, &Area) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, legend) = root.split_horizontally(PLOT_WIDTH);
        draw(&plot, &legend)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Whether values from `lo` to `hi` (both > 0) span enough to be drawn on a log axis.
pub fn spans_decades(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo >= DECADES
}

/// Least and most x and y over the series' points.
fn bounds(series: &[Series]) -> Option<((f64, f64), (f64, f64))> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if all.is_empty() {
        return None;
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        all.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    Some((fold(|p| p.0), fold(|p| p.1)))
}

/// How the x axis of [`lines`] is laid out.
#[derive(Clone, Copy, PartialEq)]
pub enum XAxis {
    /// From 0, linear.
    Linear,
    /// Powers of two (connections, workers), drawn on a linear axis of their exponent,
    /// labelled 1, 2, 4, ...
    PowersOfTwo,
    /// HdrHistogram's percentile axis: x = 1/(1−p) on a log scale, drawn as its exponent
    /// ("nines", 0 to 5) and labelled 0 %, 90 %, 99 %, 99.9 %, ...
    Percentiles,
}

/// Lines with point markers, one per series; y logarithmic where it spans decades.
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x_axis: XAxis,
) -> Result<String> {
    let series: Vec<&Series> = series.iter().filter(|s| !s.points.is_empty()).collect();
    let on_axis = on_x_axis(&series, x_axis);
    with_svg(|area, legend_area| {
        let Some(((x0, x1), (y0, y1))) = bounds(&on_axis) else {
            return no_data(area, title);
        };
        let (x, x_labels) = match x_axis {
            XAxis::Linear => ((0.0, x1 * 1.05), 10),
            XAxis::PowersOfTwo => {
                let x = (x0.floor() - 0.3, x1.ceil() + 0.3);
                (x, (x.1 - x.0).ceil() as usize + 1)
            }
            XAxis::Percentiles => ((0.0, x1.ceil().max(1.0)), x1.ceil().max(1.0) as usize + 1),
        };
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(80);
        let log_y = spans_decades(y0, y1);
        let y_desc = if log_y {
            format!("{y_desc} (log scale)")
        } else {
            y_desc.to_owned()
        };
        let look = Look {
            x_desc,
            y_desc: &y_desc,
            x_labels,
            x_axis,
            markers: x_axis != XAxis::Percentiles,
            log_y,
        };
        if log_y {
            let chart = builder
                .build_cartesian_2d(x.0..x.1, (y0 * 0.8..y1 * 1.25).log_scale())
                .map_err(err)?;
            draw_lines(chart, &on_axis, &look)?;
        } else {
            let chart = builder
                .build_cartesian_2d(x.0..x.1, 0.0..(y1 * 1.1).max(1e-9))
                .map_err(err)?;
            draw_lines(chart, &on_axis, &look)?;
        }
        legend(legend_area, &entries(&on_axis))
    })
}

/// The series with x as the axis draws it: powers of two as their exponent.
fn on_x_axis(series: &[&Series], x_axis: XAxis) -> Vec<Series> {
    let log2 = x_axis == XAxis::PowersOfTwo;
    series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            style: s.style,
            points: s
                .points
                .iter()
                .map(|&(x, y)| (if log2 { x.max(1.0).log2() } else { x }, y))
                .collect(),
        })
        .collect()
}

/// How [`draw_lines`] labels and marks a chart.
struct Look<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    x_labels: usize,
    x_axis: XAxis,
    markers: bool,
    log_y: bool,
}

/// The chart context [`draw_lines`] draws into, on a linear or logarithmic y axis.
type Chart<'a, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>;

/// Draws the mesh and one line per series, with its markers.
fn draw_lines<'a, Y>(mut chart: Chart<'a, Y>, series: &[Series], look: &Look) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_format = |v: &f64| match look.x_axis {
        XAxis::Linear => short(*v),
        XAxis::PowersOfTwo if (v - v.round()).abs() < 1e-6 => {
            let n = 2f64.powi(v.round() as i32);
            if n < 1e4 {
                format!("{n:.0}")
            } else {
                short(n)
            }
        }
        XAxis::PowersOfTwo => String::new(),
        XAxis::Percentiles => nines_label(*v),
    };
    chart
        .configure_mesh()
        .x_desc(look.x_desc)
        .y_desc(look.y_desc)
        .x_labels(look.x_labels)
        .x_label_formatter(&x_format)
        .y_labels(y_labels(look.log_y))
        .y_label_formatter(&|v| y_label(*v, look.log_y))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .max_light_lines(if look.log_y { 0 } else { 4 })
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for s in series {
        let line = s.style.colour.stroke_width(2);
        let points = s.points.iter().copied();
        if s.style.dashed {
            chart
                .draw_series(DashedLineSeries::new(points, 8, 5, line))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(points, line))
                .map_err(err)?;
        }
        let marked: Vec<(f64, f64)> = if look.markers && s.points.len() <= MOST_MARKERS {
            s.points.clone()
        } else if look.markers {
            Vec::new()
        } else {
            // A spectrum has a point every 0.05 nines: markers at whole nines only.
            s.points
                .iter()
                .copied()
                .filter(|p| (p.0 - p.0.round()).abs() < 1e-6)
                .collect()
        };
        draw_markers(&mut chart, &marked, s.style)?;
    }
    Ok(())
}

/// How many labels to ask of a y axis: on a log axis enough that plotters offers every
/// 1…9 × 10^k of up to four decades, of which [`y_label`] writes 1, 2 and 5.
fn y_labels(log: bool) -> usize {
    if log {
        40
    } else {
        10
    }
}

/// A y axis label: every one on a linear axis, only 1, 2 and 5 × 10^k on a log one.
fn y_label(v: f64, log: bool) -> String {
    if !log || v <= 0.0 {
        return short(v);
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    let shown = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-6 * m);
    if shown {
        short(v)
    } else {
        String::new()
    }
}

/// Most points a series is drawn with a marker at each (a time series has none).
const MOST_MARKERS: usize = 40;

/// The series' markers at `points`.
fn draw_markers<'a, Y>(chart: &mut Chart<'a, Y>, points: &[(f64, f64)], style: Style) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let c = style.colour;
    let at = points.iter().copied();
    match style.marker {
        Marker::Circle => chart
            .draw_series(at.map(|p| Circle::new(p, 4, c.filled())))
            .map(|_| ()),
        Marker::Triangle => chart
            .draw_series(at.map(|p| TriangleMarker::new(p, 5, c.filled())))
            .map(|_| ()),
        Marker::Square => chart
            .draw_series(
                at.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], c.filled())),
            )
            .map(|_| ()),
        Marker::Cross => chart
            .draw_series(at.map(|p| Cross::new(p, 4, c.stroke_width(2))))
            .map(|_| ()),
    }
    .map_err(err)
}

/// The legend's entries: each series' name and look.
fn entries(series: &[Series]) -> Vec<(String, Style)> {
    series.iter().map(|s| (s.name.clone(), s.style)).collect()
}

/// Top of the legend's first row, below the caption's line.
const LEGEND_TOP: i32 = 44;

/// The legend, in its own area right of the plot area: the entries under their families'
/// names, in the registry's order of families (servers it does not know, which are external, last),
/// each with its line and marker.
fn legend(area: &Area, entries: &[(String, Style)]) -> Result<()> {
    let groups: Vec<(String, Vec<&(String, Style)>)> = Family::ALL
        .iter()
        .map(|f| (f.name().to_owned(), Some(*f)))
        .chain([("external".to_owned(), None)])
        .map(|(name, family)| {
            let members: Vec<&(String, Style)> =
                entries.iter().filter(|e| e.1.family == family).collect();
            (name, members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect();
    let rows = groups.iter().map(|g| g.1.len() + 1).sum::<usize>().max(1) as i32;
    let row = ((HEIGHT as i32 - LEGEND_TOP - 20) / rows).clamp(11, 20);
    let font = row.clamp(10, 14);
    let mut y = LEGEND_TOP;
    let heading = ("sans-serif", font)
        .into_font()
        .style(FontStyle::Italic)
        .color(&RGBColor(90, 90, 90));
    let headings = groups.len() > 1 || entries.iter().any(|e| e.1.family.is_some());
    for (name, members) in groups {
        if headings {
            area.draw(&Text::new(name, (8, y), heading.clone()))
                .map_err(err)?;
            y += row;
        }
        for (label, style) in members {
            let mid = y + font / 2;
            let line = style.colour.stroke_width(2);
            if style.dashed {
                for x in [14, 26, 38] {
                    area.draw(&PathElement::new(vec![(x, mid), (x + 7, mid)], line))
                        .map_err(err)?;
                }
            } else {
                area.draw(&PathElement::new(vec![(14, mid), (46, mid)], line))
                    .map_err(err)?;
            }
            legend_marker(area, (30, mid), *style)?;
            area.draw(&Text::new(label.clone(), (54, y), ("sans-serif", font)))
                .map_err(err)?;
            y += row;
        }
        y += row / 3;
    }
    Ok(())
}

/// A marker in the legend, at pixel `at` of its area.
fn legend_marker(area: &Area, at: (i32, i32), style: Style) -> Result<()> {
    let c = style.colour;
    let origin = EmptyElement::at(at);
    match style.marker {
        Marker::Circle => area.draw(&(origin + Circle::new((0, 0), 4, c.filled()))),
        Marker::Triangle => area.draw(&(origin + TriangleMarker::new((0, 0), 5, c.filled()))),
        Marker::Square => area.draw(&(origin + Rectangle::new([(-4, -4), (4, 4)], c.filled()))),
        Marker::Cross => area.draw(&(origin + Cross::new((0, 0), 4, c.stroke_width(2)))),
    }
    .map_err(err)
}

/// HdrHistogram's percentile spectrum: latency against 1/(1−p) on a log axis (labelled as
/// percentiles: 90 %, 99 %, 99.9 %), up to the resolution each histogram's count supports.
pub fn spectrum(title: &str, histograms: &[(String, Style, &Histogram<u64>)]) -> Result<String> {
    let series: Vec<Series> = histograms
        .iter()
        .filter(|(_, _, h)| !h.is_empty())
        .map(|(name, style, h)| {
            // Up to the resolution the sample supports: 1 / (1 - q) ≤ count.
            let max_nines = (h.len() as f64).log10().min(5.0);
            let points = (0..=100)
                .map(|k| k as f64 * 0.05)
                .take_while(|n| *n <= max_nines + 1e-9)
                .map(|nines| {
                    let q = 1.0 - 10f64.powf(-nines);
                    (nines, h.value_at_quantile(q) as f64 / 1000.0)
                })
                .collect();
            Series {
                name: name.clone(),
                style: *style,
                points,
            }
        })
        .collect();
    lines(
        title,
        "percentile (x = 1/(1−p), log scale)",
        "latency (µs)",
        &series,
        XAxis::Percentiles,
    )
}

/// Grouped bars: a group per category, in it one bar per series (`None`: no bar), coloured
/// as the series; y logarithmic where the bars span decades.
pub fn bars(
    title: &str,
    y_desc: &str,
    categories: &[&str],
    rows: &[(String, Style, Vec<Option<f64>>)],
) -> Result<String> {
    let values = || rows.iter().flat_map(|r| r.2.iter().flatten().copied());
    let top = values().fold(0.0, f64::max);
    let bottom = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let rows: Vec<&(String, Style, Vec<Option<f64>>)> = rows
        .iter()
        .filter(|r| r.2.iter().any(Option::is_some))
        .collect();
    with_svg(|area, legend_area| {
        if rows.is_empty() || top <= 0.0 {
            return no_data(area, title);
        }
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(80);
        let groups = categories.len() as f64;
        if spans_decades(bottom, top) {
            let chart = builder
                .build_cartesian_2d(0.0..groups, (bottom * 0.5..top * 1.5).log_scale())
                .map_err(err)?;
            let y_desc = format!("{y_desc} (log scale)");
            draw_bars(chart, &y_desc, categories, &rows, bottom * 0.5)?;
        } else {
            let chart = builder
                .build_cartesian_2d(0.0..groups, 0.0..top * 1.15)
                .map_err(err)?;
            draw_bars(chart, y_desc, categories, &rows, 0.0)?;
        }
        let entries: Vec<(String, Style)> = rows.iter().map(|r| (r.0.clone(), r.1)).collect();
        legend(legend_area, &entries)
    })
}

/// The mesh and the bars of [`bars`], each from `floor` (the axis' bottom) to its value.
fn draw_bars<'a, Y>(
    mut chart: Chart<'a, Y>,
    y_desc: &str,
    categories: &[&str],
    rows: &[&(String, Style, Vec<Option<f64>>)],
    floor: f64,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let log_y = floor > 0.0;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels(y_labels(log_y))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .max_light_lines(if log_y { 0 } else { 4 })
        .x_labels(categories.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let centred = (x - x.floor() - 0.5).abs() < 0.01;
            match categories.get(x.floor() as usize) {
                Some(c) if centred => (*c).to_owned(),
                _ => String::new(),
            }
        })
        .y_desc(y_desc)
        .y_label_formatter(&|v| y_label(*v, log_y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let width = 0.8 / rows.len() as f64;
    for (k, row) in rows.iter().enumerate() {
        let c = row.1.colour;
        chart
            .draw_series(row.2.iter().enumerate().filter_map(|(g, v)| {
                let v = (*v)?;
                let x0 = g as f64 + 0.1 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, floor), (x0 + width * 0.85, v)],
                    c.filled(),
                ))
            }))
            .map_err(err)?;
    }
    Ok(())
}

fn no_data(area: &Area, title: &str) -> Result<()> {
    area.draw(&Text::new(
        format!("{title}: no data"),
        (20, 30),
        ("sans-serif", 18),
    ))
    .map_err(err)
}

/// `0 → 0%`, `1 → 90%`, `2 → 99%`, `3 → 99.9%`.
fn nines_label(n: f64) -> String {
    let r = n.round();
    if (n - r).abs() > 1e-6 {
        return String::new();
    }
    match r as i32 {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        k => format!("99.{}%", "9".repeat((k - 2) as usize)).replace("99.%", "99%"),
    }
}

/// Short axis numbers: 1.5k, 20k, 1.2M.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(20_000.0), "20k");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(1.0), "90%");
    }

    #[test]
    fn a_plot_is_an_svg_with_text_and_lines() {
        let s = Series {
            name: "mio".into(),
            style: super::super::palette::style("mio"),
            points: vec![(1.0, 10.0), (16.0, 100.0)],
        };
        let svg = lines("t", "x", "y", &[s], XAxis::PowersOfTwo).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("<text") && svg.contains("mio"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
