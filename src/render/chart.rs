//! The report's plots, as SVG strings (plotters' SVG backend: text stays text, no fonts needed).
//!
//! Every plot is [`WIDTH`] × [`HEIGHT`] pixels: the data on the left, [`PLOT_WIDTH`] wide, and
//! the legend to its right, outside the data, listing the series under their families (see
//! [`super::palette`]). An axis is logarithmic where its values span more than [`DECADES`]
//! from least to most, with ticks at 1, 2 and 5 × 10^k only, each once.
//!
//! A plot is drawn in layers ([`Layer`]) and put together so that each series is one group
//! that names its model: `<g class="series" data-model="mio" data-family="event loops">`,
//! holding its line and markers (`<g class="data">`, with a hover target carrying a `<title>`
//! at each marked point: model, value, interval) and its legend entry (`<g class="key">`);
//! each family's legend heading is a `<g class="family">`. The HTML report's script hides and
//! shows them on a click; as a file the SVG draws the same.

use std::fmt::Write as _;

use echo_server::Family;
use hdrhistogram::Histogram;
use plotters::coord::combinators::{BindKeyPoints, WithKeyPoints};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::block::attr;
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
    /// The model it is of, its `data-model` in the SVG: the server label (a series that is no
    /// server's: its name).
    pub model: String,
    /// Colour, marker and family, from the registry.
    pub style: Style,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
    /// What hovering each point says, one per point (model, value, interval); where absent,
    /// the series' name and the point.
    pub tips: Vec<String>,
}

impl Series {
    /// A series of its own model, its tips the points themselves.
    pub fn new(name: impl Into<String>, style: Style, points: Vec<(f64, f64)>) -> Series {
        let name = name.into();
        Series {
            model: name.clone(),
            name,
            style,
            points,
            tips: Vec::new(),
        }
    }

    /// The series, of `model`.
    pub fn of_model(mut self, model: &str) -> Series {
        model.clone_into(&mut self.model);
        self
    }

    /// The series, with a tip per point.
    pub fn with_tips(mut self, tips: Vec<String>) -> Series {
        self.tips = tips;
        self
    }

    /// The tip of point `i`.
    fn tip(&self, i: usize) -> String {
        self.tips.get(i).cloned().unwrap_or_else(|| {
            let (x, y) = self.points.get(i).copied().unwrap_or_default();
            format!("{}: {}, {}", self.name, short(x), short(y))
        })
    }
}

/// What a plot is drawn in, one at a time, so that each series becomes its own group.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layer {
    /// The background, the title, the axes and their labels.
    Frame,
    /// One panel's axes and labels, where a plot has panels ([`spectrum_by_family`]).
    Panel(usize),
    /// A family's heading in the legend (by its place in [`legend_groups`]).
    Heading(usize),
    /// A series' line and markers.
    Data(usize),
    /// A series' legend entry.
    Key(usize),
}

/// A marked point's place in pixels and what hovering it says.
type Hit = ((i32, i32), String);

/// A layer of a plot: what [`layered`] calls for each, on the whole plot's area.
type DrawLayer<'d> = dyn Fn(&Area, Layer) -> Result<Vec<Hit>> + 'd;

/// What an SVG document of plotters holds between its `<svg>` line and `</svg>`.
fn svg_body(svg: &str) -> &str {
    let start = svg.find('\n').map_or(0, |i| i + 1);
    let end = svg.rfind("</svg>").unwrap_or(svg.len()).max(start);
    &svg[start..end]
}

/// One layer, drawn alone on a `size` canvas (only the frame fills it white).
fn draw_layer(size: (u32, u32), draw: &DrawLayer, layer: Layer) -> Result<(String, Vec<Hit>)> {
    let mut svg = String::new();
    let hits;
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        if layer == Layer::Frame {
            root.fill(&WHITE).map_err(err)?;
        }
        hits = draw(&root, layer)?;
        root.present().map_err(err)?;
    }
    Ok((svg, hits))
}

/// A plot of `size` put together from its layers: the frame, its `panels` (each a
/// `<g class="panel">`), each family heading (`headings`) as a group, and each series
/// (`series`: its model and style) as a group of its data, with a hover target at each hit,
/// and its legend entry.
fn layered(
    size: (u32, u32),
    panels: usize,
    headings: &[String],
    series: &[(String, Style)],
    draw: &DrawLayer,
) -> Result<String> {
    let (frame, _) = draw_layer(size, draw, Layer::Frame)?;
    let open = frame.find('\n').map_or(frame.len(), |i| i + 1);
    let mut out = frame[..open].to_owned();
    out += svg_body(&frame);
    for k in 0..panels {
        let (svg, _) = draw_layer(size, draw, Layer::Panel(k))?;
        let _ = write!(out, "<g class=\"panel\">\n{}</g>\n", svg_body(&svg));
    }
    for (k, heading) in headings.iter().enumerate() {
        let (svg, _) = draw_layer(size, draw, Layer::Heading(k))?;
        let _ = write!(
            out,
            "<g class=\"family\" data-family=\"{}\">\n{}</g>\n",
            attr(heading),
            svg_body(&svg)
        );
    }
    for (i, (model, style)) in series.iter().enumerate() {
        let (data, hits) = draw_layer(size, draw, Layer::Data(i))?;
        let (key, _) = draw_layer(size, draw, Layer::Key(i))?;
        let _ = write!(
            out,
            "<g class=\"series\" data-model=\"{}\" data-family=\"{}\">\n<g class=\"data\">\n{}",
            attr(model),
            attr(family_name(style.family)),
            svg_body(&data)
        );
        for ((x, y), tip) in hits {
            let _ = writeln!(
                out,
                "<circle class=\"hit\" cx=\"{x}\" cy=\"{y}\" r=\"7\" fill=\"transparent\"><title>{}</title></circle>",
                attr(&tip)
            );
        }
        let _ = write!(
            out,
            "</g>\n<g class=\"key\">\n{}</g>\n</g>\n",
            svg_body(&key)
        );
    }
    out += "</svg>\n";
    Ok(out)
}

/// A family's name in the legend; servers the registry does not know are `external`.
fn family_name(family: Option<Family>) -> &'static str {
    family.map_or("external", Family::name)
}

type Result<T> = std::result::Result<T, String>;

/// A drawing area of the SVG backend.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// A plot that says it has no data ([`NO_DATA`]), which the report leaves out.
fn no_data_svg(title: &str) -> Result<String> {
    let say = |root: &Area, _| {
        root.draw(&Text::new(
            format!("{title}{NO_DATA}"),
            (20, 30),
            ("sans-serif", 18),
        ))
        .map_err(err)?;
        Ok(Vec::new())
    };
    draw_layer((WIDTH, HEIGHT), &say, Layer::Frame).map(|(svg, _)| svg)
}

/// The ticks of a log axis from `lo` to `hi`: 1, 2 and 5 × 10^k, each once.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if lo <= 0.0 || hi <= lo {
        return Vec::new();
    }
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    (first..=last)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A log axis from `lo` to `hi` with [`log_ticks`].
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    (lo..hi).log_scale().with_key_points(log_ticks(lo, hi))
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

/// Space above the plot area for the title, pixels.
const TITLE_SPACE: u32 = 30;

/// The plot's title, centred over the plot area (drawn in the frame).
fn draw_title(area: &Area, title: &str) -> Result<()> {
    let (width, _) = area.dim_in_pixel();
    let font =
        TextStyle::from(("sans-serif", 20).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(title.to_owned(), (width as i32 / 2, 8), font))
        .map_err(err)
}

/// The plot area left of the legend, for the layers drawn on it: the frame (its title drawn
/// here) and the data. The legend's layers are drawn here, and have none.
fn plot_area<'b>(
    root: &Area<'b>,
    title: &str,
    entries: &[(String, Style)],
    layer: Layer,
) -> Result<Option<Area<'b>>> {
    let (area, legend_area) = root.split_horizontally(PLOT_WIDTH);
    match layer {
        Layer::Heading(_) | Layer::Key(_) => {
            legend(&legend_area, entries, layer)?;
            Ok(None)
        }
        Layer::Frame => {
            draw_title(&area, title)?;
            Ok(Some(area))
        }
        Layer::Data(_) | Layer::Panel(_) => Ok(Some(area)),
    }
}

/// A chart builder on `area` with the room every plot leaves for its title and labels.
fn builder<'a, 'b>(area: &'a Area<'b>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(14)
        .margin_top(14 + TITLE_SPACE)
        .x_label_area_size(48)
        .y_label_area_size(80);
    builder
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
    let Some(((x0, x1), (y0, y1))) = bounds(&on_axis) else {
        return no_data_svg(title);
    };
    let (x, x_labels) = match x_axis {
        XAxis::Linear => ((0.0, x1 * 1.05), 10),
        XAxis::PowersOfTwo => {
            let x = (x0.floor() - 0.3, x1.ceil() + 0.3);
            (x, (x.1 - x.0).ceil() as usize + 1)
        }
        XAxis::Percentiles => ((0.0, x1.ceil().max(1.0)), x1.ceil().max(1.0) as usize + 1),
    };
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
    let entries = entries(&on_axis);
    let draw = |root: &Area, layer: Layer| -> Result<Vec<Hit>> {
        let Some(area) = plot_area(root, title, &entries, layer)? else {
            return Ok(Vec::new());
        };
        let mut b = builder(&area);
        if log_y {
            let chart = b
                .build_cartesian_2d(x.0..x.1, log_axis(y0 * 0.8, y1 * 1.25))
                .map_err(err)?;
            lines_layer(chart, layer, &on_axis, &look)
        } else {
            let chart = b
                .build_cartesian_2d(x.0..x.1, 0.0..(y1 * 1.1).max(1e-9))
                .map_err(err)?;
            lines_layer(chart, layer, &on_axis, &look)
        }
    };
    layered(
        (WIDTH, HEIGHT),
        0,
        &legend_headings(&entries),
        &keyed(&on_axis),
        &draw,
    )
}

/// Each series' model and style, as [`layered`] groups them.
fn keyed(series: &[Series]) -> Vec<(String, Style)> {
    series.iter().map(|s| (s.model.clone(), s.style)).collect()
}

/// The series with x as the axis draws it: powers of two as their exponent; their tips
/// written from the points as given.
fn on_x_axis(series: &[&Series], x_axis: XAxis) -> Vec<Series> {
    let log2 = x_axis == XAxis::PowersOfTwo;
    series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            model: s.model.clone(),
            style: s.style,
            points: s
                .points
                .iter()
                .map(|&(x, y)| (if log2 { x.max(1.0).log2() } else { x }, y))
                .collect(),
            tips: (0..s.points.len()).map(|i| s.tip(i)).collect(),
        })
        .collect()
}

/// How [`lines_layer`] labels and marks a chart.
struct Look<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    x_labels: usize,
    x_axis: XAxis,
    markers: bool,
    log_y: bool,
}

/// The chart context a layer draws into, on a linear or logarithmic y axis.
type Chart<'a, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>;

/// One layer of [`lines`]: the mesh in the frame, or one series' line and markers, with a
/// hit at each marker.
fn lines_layer<'a, Y>(
    mut chart: Chart<'a, Y>,
    layer: Layer,
    series: &[Series],
    look: &Look,
) -> Result<Vec<Hit>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    match layer {
        Layer::Frame => {
            draw_mesh(&mut chart, look)?;
            Ok(Vec::new())
        }
        Layer::Data(i) => match series.get(i) {
            Some(s) => draw_series(&mut chart, s, look),
            None => Ok(Vec::new()),
        },
        Layer::Heading(_) | Layer::Key(_) | Layer::Panel(_) => Ok(Vec::new()),
    }
}

/// The axes, their labels and the grid of [`lines`].
fn draw_mesh<'a, Y>(chart: &mut Chart<'a, Y>, look: &Look) -> Result<()>
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
        .y_labels(10)
        .y_label_formatter(&|v| short(*v))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .max_light_lines(if look.log_y { 0 } else { 4 })
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)
}

/// One series' line and its markers; a hit at each marker.
fn draw_series<'a, Y>(chart: &mut Chart<'a, Y>, s: &Series, look: &Look) -> Result<Vec<Hit>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
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
    let marked: Vec<usize> = if look.markers && s.points.len() <= MOST_MARKERS {
        (0..s.points.len()).collect()
    } else if look.markers {
        Vec::new()
    } else {
        // A spectrum has a point every 0.05 nines: markers at whole nines only.
        (0..s.points.len())
            .filter(|&i| (s.points[i].0 - s.points[i].0.round()).abs() < 1e-6)
            .collect()
    };
    let at: Vec<(f64, f64)> = marked.iter().map(|&i| s.points[i]).collect();
    draw_markers(chart, &at, s.style)?;
    Ok(marked
        .iter()
        .map(|&i| (chart.backend_coord(&s.points[i]), s.tip(i)))
        .collect())
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

/// Top of the legend's first row, below the title's line.
const LEGEND_TOP: i32 = 44;

/// The legend's groups: each family's name with its entries (by index), in the registry's
/// order of families (servers it does not know, which are external, last).
fn legend_groups(entries: &[(String, Style)]) -> Vec<(String, Vec<usize>)> {
    Family::ALL
        .iter()
        .map(|f| Some(*f))
        .chain([None])
        .map(|family| {
            let members: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].1.family == family)
                .collect();
            (family_name(family).to_owned(), members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect()
}

/// The legend's headings, where it shows them: more than one group, or one of the registry's.
fn legend_headings(entries: &[(String, Style)]) -> Vec<String> {
    let groups = legend_groups(entries);
    let shown = groups.len() > 1 || entries.iter().any(|e| e.1.family.is_some());
    match shown {
        true => groups.into_iter().map(|g| g.0).collect(),
        false => Vec::new(),
    }
}

/// The legend, in its own area right of the plot area: the entries under their families'
/// names, each with its line and marker. Draws only what `layer` asks for: heading `k`, or the
/// entry of series `i` (each with a clear box under it, to click).
fn legend(area: &Area, entries: &[(String, Style)], layer: Layer) -> Result<()> {
    let groups = legend_groups(entries);
    let headings = !legend_headings(entries).is_empty();
    let rows = groups.iter().map(|g| g.1.len() + 1).sum::<usize>().max(1) as i32;
    let row = ((HEIGHT as i32 - LEGEND_TOP - 20) / rows).clamp(11, 20);
    let font = row.clamp(10, 14);
    let (width, _) = area.dim_in_pixel();
    let target = |y: i32| {
        Rectangle::new(
            [(4, y - 2), (width as i32 - 4, y + row - 2)],
            WHITE.mix(0.0).filled(),
        )
    };
    let mut y = LEGEND_TOP;
    let heading = ("sans-serif", font)
        .into_font()
        .style(FontStyle::Italic)
        .color(&RGBColor(90, 90, 90));
    for (k, (name, members)) in groups.into_iter().enumerate() {
        if headings {
            if layer == Layer::Heading(k) {
                area.draw(&target(y)).map_err(err)?;
                area.draw(&Text::new(name, (8, y), heading.clone()))
                    .map_err(err)?;
            }
            y += row;
        }
        for i in members {
            if layer == Layer::Key(i) {
                let (label, style) = &entries[i];
                area.draw(&target(y)).map_err(err)?;
                legend_entry(area, (y, font), label, *style)?;
            }
            y += row;
        }
        y += row / 3;
    }
    Ok(())
}

/// One legend entry at row `y` in a `font`-pixel font: its line, marker and label.
fn legend_entry(area: &Area, (y, font): (i32, i32), label: &str, style: Style) -> Result<()> {
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
    legend_marker(area, (30, mid), style)?;
    area.draw(&Text::new(label.to_owned(), (54, y), ("sans-serif", font)))
        .map_err(err)
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

/// The percentile spectrum's series: latency (µs) against 1/(1−p) as nines, up to the
/// resolution each histogram's count supports, with a tip at each whole nine.
fn spectrum_series(histograms: &[(String, Style, &Histogram<u64>)]) -> Vec<Series> {
    histograms
        .iter()
        .filter(|(_, _, h)| !h.is_empty())
        .map(|(name, style, h)| {
            // Up to the resolution the sample supports: 1 / (1 - q) ≤ count.
            let max_nines = (h.len() as f64).log10().min(5.0);
            let points: Vec<(f64, f64)> = (0..=100)
                .map(|k| k as f64 * 0.05)
                .take_while(|n| *n <= max_nines + 1e-9)
                .map(|nines| {
                    let q = 1.0 - 10f64.powf(-nines);
                    (nines, h.value_at_quantile(q) as f64 / 1000.0)
                })
                .collect();
            let tips = points
                .iter()
                .map(|&(n, v)| format!("{name}: {} at {}", us_text(v), nines_label(n)))
                .collect();
            Series::new(name.clone(), *style, points).with_tips(tips)
        })
        .collect()
}

/// Microseconds as a tip says them: `330 µs`, `12.5 ms`.
fn us_text(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{} ms", trim(v / 1000.0))
    } else {
        format!("{} µs", trim(v))
    }
}

/// HdrHistogram's percentile spectrum: latency against 1/(1−p) on a log axis (labelled as
/// percentiles: 90 %, 99 %, 99.9 %), up to the resolution each histogram's count supports.
pub fn spectrum(title: &str, histograms: &[(String, Style, &Histogram<u64>)]) -> Result<String> {
    lines(
        title,
        "percentile (x = 1/(1−p), log scale)",
        "latency (µs)",
        &spectrum_series(histograms),
        XAxis::Percentiles,
    )
}

/// Height of one family's panel in [`spectrum_by_family`], pixels.
const PANEL_HEIGHT: u32 = 260;

/// Width of a panel's legend, right of its plot, pixels.
const PANEL_LEGEND: u32 = 150;

/// The percentile spectrum as small multiples: a panel per family, two to a row, on the
/// same axes, each with its own legend; a family's name above its panel is its heading.
pub fn spectrum_by_family(
    title: &str,
    histograms: &[(String, Style, &Histogram<u64>)],
) -> Result<String> {
    let series = spectrum_series(histograms);
    let entries = entries(&series);
    let groups = legend_groups(&entries);
    let Some((_, (y0, y1))) = bounds(&series) else {
        return no_data_svg(title);
    };
    let x1 = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max)
        .ceil();
    let log_y = spans_decades(y0, y1);
    let columns = 2;
    let panel_rows = groups.len().div_ceil(columns).max(1);
    let size = (WIDTH, TITLE_SPACE + 14 + PANEL_HEIGHT * panel_rows as u32);
    let look = Look {
        x_desc: "percentile",
        y_desc: if log_y { "µs (log scale)" } else { "µs" },
        x_labels: x1 as usize + 1,
        x_axis: XAxis::Percentiles,
        markers: false,
        log_y,
    };
    // Series `i`'s panel and its row in that panel's legend.
    let place = |i: usize| {
        groups.iter().enumerate().find_map(|(k, (_, members))| {
            let row = members.iter().position(|&m| m == i)?;
            Some((k, row))
        })
    };
    let draw = |root: &Area, layer: Layer| -> Result<Vec<Hit>> {
        let body = root.margin(TITLE_SPACE + 14, 0, 0, 0);
        let panels = body.split_evenly((panel_rows, columns));
        let k = match layer {
            Layer::Frame => return draw_title(root, title).map(|()| Vec::new()),
            Layer::Panel(k) | Layer::Heading(k) => k,
            Layer::Data(i) | Layer::Key(i) => match place(i) {
                Some((k, _)) => k,
                None => return Ok(Vec::new()),
            },
        };
        let Some(area) = panels.get(k) else {
            return Ok(Vec::new());
        };
        let (width, _) = area.dim_in_pixel();
        let (plot, key) = area.split_horizontally(width.saturating_sub(PANEL_LEGEND));
        match layer {
            Layer::Heading(_) => {
                let font = ("sans-serif", 15).into_font().style(FontStyle::Italic);
                plot.draw(&Text::new(groups[k].0.clone(), (84, 4), font))
                    .map_err(err)?;
                return Ok(Vec::new());
            }
            Layer::Key(i) => {
                let row = place(i).map_or(0, |(_, r)| r) as i32;
                let (label, style) = &entries[i];
                legend_entry(&key, (24 + row * 16, 12), label, *style)?;
                return Ok(Vec::new());
            }
            _ => {}
        }
        // The panel's mesh is drawn as the frame of its chart.
        let layer = match layer {
            Layer::Panel(_) => Layer::Frame,
            other => other,
        };
        let mut b = ChartBuilder::on(&plot);
        b.margin(8)
            .margin_top(24)
            .x_label_area_size(36)
            .y_label_area_size(64);
        if log_y {
            let chart = b
                .build_cartesian_2d(0.0..x1, log_axis(y0 * 0.8, y1 * 1.25))
                .map_err(err)?;
            lines_layer(chart, layer, &series, &look)
        } else {
            let chart = b
                .build_cartesian_2d(0.0..x1, 0.0..(y1 * 1.1).max(1e-9))
                .map_err(err)?;
            lines_layer(chart, layer, &series, &look)
        }
    };
    layered(
        size,
        groups.len(),
        &legend_headings(&entries),
        &keyed(&series),
        &draw,
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
    if rows.is_empty() || top <= 0.0 {
        return no_data_svg(title);
    }
    // A row's name is its model: the legend's entries are the groups' too.
    let entries: Vec<(String, Style)> = rows.iter().map(|r| (r.0.clone(), r.1)).collect();
    let log_y = spans_decades(bottom, top);
    let draw = |root: &Area, layer: Layer| -> Result<Vec<Hit>> {
        let Some(area) = plot_area(root, title, &entries, layer)? else {
            return Ok(Vec::new());
        };
        let groups = categories.len() as f64;
        let mut b = builder(&area);
        if log_y {
            let chart = b
                .build_cartesian_2d(0.0..groups, log_axis(bottom * 0.5, top * 1.5))
                .map_err(err)?;
            let y_desc = format!("{y_desc} (log scale)");
            bars_layer(chart, layer, &y_desc, categories, &rows, bottom * 0.5)
        } else {
            let chart = b
                .build_cartesian_2d(0.0..groups, 0.0..top * 1.15)
                .map_err(err)?;
            bars_layer(chart, layer, y_desc, categories, &rows, 0.0)
        }
    };
    layered(
        (WIDTH, HEIGHT),
        0,
        &legend_headings(&entries),
        &entries,
        &draw,
    )
}

/// One layer of [`bars`]: the mesh in the frame, or one series' bars, each from `floor` (the
/// axis' bottom) to its value, with a hit at its top.
fn bars_layer<'a, Y>(
    mut chart: Chart<'a, Y>,
    layer: Layer,
    y_desc: &str,
    categories: &[&str],
    rows: &[&(String, Style, Vec<Option<f64>>)],
    floor: f64,
) -> Result<Vec<Hit>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let log_y = floor > 0.0;
    match layer {
        Layer::Frame => {
            chart
                .configure_mesh()
                .disable_x_mesh()
                .y_labels(10)
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
                .y_label_formatter(&|v| short(*v))
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            Ok(Vec::new())
        }
        Layer::Data(k) => {
            let Some(row) = rows.get(k) else {
                return Ok(Vec::new());
            };
            let width = 0.8 / rows.len() as f64;
            let c = row.1.colour;
            let bars: Vec<(usize, f64, f64, f64)> = row
                .2
                .iter()
                .enumerate()
                .filter_map(|(g, v)| {
                    let x0 = g as f64 + 0.1 + k as f64 * width;
                    Some((g, x0, x0 + width * 0.85, (*v)?))
                })
                .collect();
            chart
                .draw_series(
                    bars.iter()
                        .map(|&(_, x0, x1, v)| Rectangle::new([(x0, floor), (x1, v)], c.filled())),
                )
                .map_err(err)?;
            let unit = y_desc.trim_end_matches(" (log scale)");
            Ok(bars
                .iter()
                .map(|&(g, x0, x1, v)| {
                    let tip = format!("{}, {}: {} {unit}", row.0, categories[g], short(v));
                    (chart.backend_coord(&((x0 + x1) / 2.0, v)), tip)
                })
                .collect())
        }
        Layer::Heading(_) | Layer::Key(_) | Layer::Panel(_) => Ok(Vec::new()),
    }
}

/// What a plot without data says after its title; the report leaves such plots out.
pub const NO_DATA: &str = ": no data";

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
        let s = Series::new(
            "mio",
            super::super::palette::style("mio"),
            vec![(1.0, 10.0), (16.0, 100.0)],
        );
        let svg = lines("t", "x", "y", &[s], XAxis::PowersOfTwo).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("<text") && svg.contains("mio"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }

    #[test]
    fn log_ticks_are_one_two_five_each_once() {
        assert_eq!(
            log_ticks(80.0, 12_500.0),
            [100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0]
        );
        assert!(log_ticks(0.0, 10.0).is_empty());
    }

    #[test]
    fn each_series_is_a_group_that_names_its_model_with_a_tip_at_each_point() {
        let style = super::super::palette::style;
        let mio = Series::new("mio", style("mio"), vec![(1.0, 10.0), (16.0, 100.0)])
            .with_tips(vec!["mio · c1: 10".into(), "mio · c16: 100".into()]);
        let tokio = Series::new("tokio", style("tokio"), vec![(1.0, 12.0), (16.0, 90.0)]);
        let svg = lines("t", "x", "y", &[mio, tokio], XAxis::PowersOfTwo).unwrap();
        assert_eq!(svg.matches("<g class=\"series\"").count(), 2);
        assert!(svg.contains("<g class=\"series\" data-model=\"mio\" data-family=\"event loops\">"));
        assert!(svg.contains("<title>mio · c16: 100</title>"));
        assert!(
            svg.contains("<title>tokio: 16, 90</title>"),
            "a tip from the point as given"
        );
        assert!(svg.contains("<g class=\"family\" data-family=\"runtimes\">"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
