//! The report's plots, as SVG strings (plotters' SVG backend: text stays text, no fonts needed).

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Size of every plot, pixels.
const SIZE: (u32, u32) = (760, 420);

/// One colour per model, in report order: Okabe and Ito's colour-blind-safe eight, then four
/// more, so that twelve models never share a colour.
const PALETTE: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(120, 120, 120),
    RGBColor(136, 34, 85),
    RGBColor(68, 170, 153),
    RGBColor(102, 51, 153),
];

/// The colour of the `i`-th model.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A named series of (x, y) points.
pub struct Series {
    /// Model name.
    pub name: String,
    /// Index of the model, for its colour.
    pub index: usize,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn with_svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

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

/// Lines with points, one per series. `log2_x` spaces x by powers of two (connections);
/// `log_y` makes y logarithmic (latency).
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log2_x: bool,
    log_y: bool,
) -> Result<String> {
    let x_axis = if log2_x {
        XAxis::PowersOfTwo
    } else {
        XAxis::Linear
    };
    chart(title, x_desc, y_desc, series, x_axis, log_y, true)
}

/// How the x axis of [`chart`] is laid out.
#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    /// From 0, linear.
    Linear,
    /// Powers of two, drawn on a linear axis of their exponent, labelled 1, 2, 4, ...
    PowersOfTwo,
    /// Percentiles as "nines" from 0 to 5, labelled 0 %, 90 %, 99 %, ...
    Nines,
}

/// The line chart behind [`lines`] and [`spectrum`]: one coloured line per series, with a
/// legend, optional point markers and a logarithmic y axis on request.
fn chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x_axis: XAxis,
    log_y: bool,
    markers: bool,
) -> Result<String> {
    let series = on_x_axis(series, x_axis);
    with_svg(|root| {
        let Some(((x0, x1), (y0, y1))) = bounds(&series) else {
            return no_data(root, title);
        };
        let (x, x_labels) = match x_axis {
            XAxis::Linear => ((0.0, x1 * 1.05), 10),
            XAxis::PowersOfTwo => {
                let x = (x0.floor() - 0.3, x1.ceil() + 0.3);
                (x, (x.1 - x.0).ceil() as usize + 1)
            }
            XAxis::Nines => ((0.0, 5.0), 6),
        };
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80);
        let look = Look {
            x_desc,
            y_desc,
            x_labels,
            x_axis,
            markers,
        };
        if log_y {
            // Latencies in µs: nothing below a nanosecond.
            let y = (y0.max(0.001) * 0.8, y1 * 1.25);
            let chart = builder
                .build_cartesian_2d(x.0..x.1, (y.0..y.1).log_scale())
                .map_err(err)?;
            draw_lines(chart, &series, &look)
        } else {
            let y = (0.0, (y1 * 1.1).max(1e-9));
            let chart = builder
                .build_cartesian_2d(x.0..x.1, y.0..y.1)
                .map_err(err)?;
            draw_lines(chart, &series, &look)
        }
    })
}

/// The series with x as the axis draws it: powers of two as their exponent.
fn on_x_axis(series: &[Series], x_axis: XAxis) -> Vec<Series> {
    let log2 = x_axis == XAxis::PowersOfTwo;
    series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            index: s.index,
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
}

/// Draws the mesh, one line per series and the legend, on a linear or logarithmic y axis.
fn draw_lines<'a, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    series: &[Series],
    look: &Look,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_format = |v: &f64| match look.x_axis {
        XAxis::Linear => short(*v),
        XAxis::PowersOfTwo if (v - v.round()).abs() < 1e-6 => short(2f64.powi(v.round() as i32)),
        XAxis::PowersOfTwo => String::new(),
        XAxis::Nines => nines_label(*v),
    };
    chart
        .configure_mesh()
        .x_desc(look.x_desc)
        .y_desc(look.y_desc)
        .x_labels(look.x_labels)
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(err)?;
    for s in series {
        let c = color(s.index);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        if look.markers {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

/// HdrHistogram's percentile spectrum: latency against "nines" (0 = 0 %, 2 = 99 %, 3 = 99.9 %).
pub fn spectrum(title: &str, histograms: &[(String, usize, &Histogram<u64>)]) -> Result<String> {
    let series: Vec<Series> = histograms
        .iter()
        .filter(|(_, _, h)| !h.is_empty())
        .map(|(name, index, h)| {
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
                index: *index,
                points,
            }
        })
        .collect();
    chart(
        title,
        "percentile",
        "latency (µs)",
        &series,
        XAxis::Nines,
        true,
        false,
    )
}

/// Grouped bars: for each model a group with one bar per category (`None`: no bar).
pub fn bars(
    title: &str,
    y_desc: &str,
    categories: &[&str],
    rows: &[(String, usize, Vec<Option<f64>>)],
) -> Result<String> {
    with_svg(|root| {
        let top = rows
            .iter()
            .flat_map(|r| r.2.iter().flatten().copied())
            .fold(0.0, f64::max);
        if rows.is_empty() || top <= 0.0 {
            return no_data(root, title);
        }
        let groups = rows.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..groups as f64, 0f64..top * 1.15)
            .map_err(err)?;
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                let centred = (x - x.floor() - 0.5).abs() < 0.01;
                if centred {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(y_desc)
            .y_label_formatter(&|v| short(*v))
            .draw()
            .map_err(err)?;
        draw_bars(&mut chart, categories, rows)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// One bar per category in each model's group, in shades of grey that the legend names.
fn draw_bars<'a>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    categories: &[&str],
    rows: &[(String, usize, Vec<Option<f64>>)],
) -> Result<()> {
    let width = 0.8 / categories.len() as f64;
    for (k, category) in categories.iter().enumerate() {
        let shade = 60 + (k * 150 / categories.len().max(1)) as u8;
        let c = RGBColor(shade, shade, shade);
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(g, row)| {
                let v = row.2.get(k).copied().flatten()?;
                let x0 = g as f64 + 0.1 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, v)],
                    c.filled(),
                ))
            }))
            .map_err(err)?
            .label(*category)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    Ok(())
}

fn no_data(root: &DrawingArea<SVGBackend, Shift>, title: &str) -> Result<()> {
    root.draw(&Text::new(
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
            index: 0,
            points: vec![(1.0, 10.0), (16.0, 100.0)],
        };
        let svg = lines("t", "x", "y", &[s], true, false).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("<text") && svg.contains("mio"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
