//! The report's plots as a reader sees them: wide enough, the legend outside the data, each
//! model in its registry colour whatever else is drawn beside it. The layout is pinned in a
//! snapshot read off the SVG itself.

use echo_server::Model;
use echobench::render::chart::{self, Series, XAxis, HEIGHT, PLOT_WIDTH, WIDTH};
use echobench::render::palette;
use hdrhistogram::Histogram;

/// The TCP models: the plots draw the TCP workloads (the UDP ones are in the report's tables).
fn tcp_models() -> Vec<Model> {
    Model::of(echo_server::Transport::Tcp).collect()
}

/// One series per model: throughput-like values over 1, 16 and 128 connections.
fn series(models: &[Model]) -> Vec<Series> {
    models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Series::new(
                m.name(),
                palette::style(m.name()),
                [1.0_f64, 16.0, 128.0]
                    .iter()
                    .map(|&c| (c, 10_000.0 + 9_000.0 * i as f64 * c.log2()))
                    .collect(),
            )
        })
        .collect()
}

/// A `<text>` element: where it is and what it says.
#[derive(Debug)]
struct Text {
    x: f64,
    y: f64,
    text: String,
}

/// The value of attribute `name` in the tag `tag`.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn texts(svg: &str) -> Vec<Text> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|rest| {
            let (tag, after) = rest.split_once('>')?;
            let text = after.split("</text>").next()?.trim().to_owned();
            Some(Text {
                x: attr(&format!(" {tag}"), "x")?.parse().ok()?,
                y: attr(&format!(" {tag}"), "y")?.parse().ok()?,
                text,
            })
        })
        .collect()
}

/// The coloured polylines, by stroke colour, with their least and largest x: the data's
/// lines and the legend's swatches.
fn coloured_lines(svg: &str) -> Vec<(String, f64, f64)> {
    svg.split("<polyline ")
        .skip(1)
        .filter_map(|rest| {
            let tag = format!(" {}", rest.split("/>").next()?);
            let stroke = attr(&tag, "stroke")?;
            if stroke == "#000000" {
                return None;
            }
            let xs: Vec<f64> = attr(&tag, "points")?
                .split_whitespace()
                .filter_map(|p| p.split(',').next()?.parse::<f64>().ok())
                .collect();
            let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((stroke, min, max))
        })
        .collect()
}

/// The data's lines (left of the legend), by colour, each with its largest x; a line that
/// crosses from the data into the legend fails the test.
fn data_lines(svg: &str) -> Vec<(String, f64)> {
    let edge = f64::from(PLOT_WIDTH);
    coloured_lines(svg)
        .into_iter()
        .inspect(|(stroke, min, max)| {
            assert!(
                !(*min < edge && *max > edge),
                "a line ({stroke}) crosses from the data into the legend: x {min} to {max}"
            )
        })
        .filter(|(_, _, max)| *max <= edge)
        .map(|(stroke, _, max)| (stroke, max))
        .collect()
}

/// The legend's swatches: coloured lines right of the plot area.
fn swatches(svg: &str) -> usize {
    coloured_lines(svg)
        .iter()
        .filter(|(_, min, _)| *min > f64::from(PLOT_WIDTH))
        .count()
}

fn hex(style: palette::Style) -> String {
    let c = style.colour;
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// What the snapshot pins: the size, where the data end, and the legend's rows.
fn layout(svg: &str, names: &[&str]) -> String {
    let width = attr(svg, "width").expect("the svg has a width");
    let height = attr(svg, "height").expect("the svg has a height");
    let mut out = format!("svg {width} × {height}, plot area x < {PLOT_WIDTH}\n");
    let families: Vec<&str> = echo_server::Family::ALL.iter().map(|f| f.name()).collect();
    for t in texts(svg) {
        if names.contains(&t.text.as_str()) || families.contains(&t.text.as_str()) {
            out += &format!("legend x {:>4} y {:>3}: {}\n", t.x, t.y, t.text);
        }
    }
    out
}

#[test]
fn plots_are_wide_with_the_legend_outside_the_data() {
    let all = series(&tcp_models());
    let svg = chart::lines("t", "connections", "msgs/s", &all, XAxis::PowersOfTwo).unwrap();
    const { assert!(WIDTH >= 900 && PLOT_WIDTH < WIDTH) };
    assert_eq!(attr(&svg, "width").unwrap(), WIDTH.to_string());
    assert_eq!(attr(&svg, "height").unwrap(), HEIGHT.to_string());

    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    let legend: Vec<Text> = texts(&svg)
        .into_iter()
        .filter(|t| names.contains(&t.text.as_str()))
        .collect();
    assert_eq!(
        legend.len(),
        names.len(),
        "every model is in the legend once"
    );
    for t in &legend {
        assert!(
            t.x > f64::from(PLOT_WIDTH),
            "legend entry {t:?} over the plot area"
        );
        assert!(t.y < f64::from(HEIGHT), "legend entry {t:?} below the plot");
    }
    let lines = data_lines(&svg);
    assert!(lines.len() >= names.len(), "one line per model");
    assert_eq!(
        swatches(&svg),
        names.len(),
        "one swatch per model, in the legend"
    );
    for (stroke, x) in &lines {
        assert!(
            *x <= f64::from(PLOT_WIDTH),
            "a data line ({stroke}) reaches x {x}"
        );
    }
    insta::assert_snapshot!("lines_layout", layout(&svg, &names));
}

#[test]
fn a_model_keeps_its_colour_whatever_else_is_drawn() {
    let strokes = |models: &[Model]| {
        let svg = chart::lines("t", "x", "y", &series(models), XAxis::PowersOfTwo).unwrap();
        data_lines(&svg)
    };
    let mio = hex(palette::style("mio"));
    assert!(strokes(&tcp_models()).iter().any(|(s, _)| *s == mio));
    assert!(strokes(&[Model::Mio, Model::Tokio])
        .iter()
        .any(|(s, _)| *s == mio));
    assert!(strokes(&[Model::Tokio, Model::Mio])
        .iter()
        .any(|(s, _)| *s == mio));
    // Models of a family share its hue, never a colour and a marker.
    assert_ne!(palette::style("mio"), palette::style("mio-multi"));
}

#[test]
fn spectra_and_bars_keep_the_legend_outside_too() {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for v in 1..=20_000u64 {
        h.record(50_000 + v * 10).unwrap();
    }
    let histograms: Vec<(String, palette::Style, &Histogram<u64>)> = tcp_models()
        .iter()
        .map(|m| (m.name().to_owned(), palette::style(m.name()), &h))
        .collect();
    let spectrum = chart::spectrum("s", &histograms).unwrap();
    let rows: Vec<(String, palette::Style, Vec<Option<f64>>)> = tcp_models()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let v = 5.0 + i as f64;
            (
                m.name().to_owned(),
                palette::style(m.name()),
                vec![Some(v), Some(v * 40.0)],
            )
        })
        .collect();
    let bars = chart::bars("b", "µs", &["per message", "per connection"], &rows).unwrap();
    for svg in [&spectrum, &bars] {
        for t in texts(svg) {
            if Model::from_name(&t.text).is_some() {
                assert!(t.x > f64::from(PLOT_WIDTH), "{t:?}");
            }
        }
        for (stroke, x) in data_lines(svg) {
            assert!(x <= f64::from(PLOT_WIDTH), "{stroke} reaches {x}");
        }
    }
    assert!(
        spectrum.contains("99.9%") && spectrum.contains("1/(1−p)"),
        "the spectrum's x axis is HdrHistogram's"
    );
    assert!(
        bars.contains("(log scale)"),
        "bars that span decades are drawn on a log axis"
    );
}
