//! Each server's colour and marker, from the model registry: a hue per family (iterative and
//! pools orange, threads and processes purple, event loops blue, runtimes green), a shade and
//! a marker per model within its family. A model keeps its look in every plot of every run,
//! whichever models a comparison selects; servers the registry does not know are grey.

use echo_server::{Family, Model};
use plotters::style::RGBColor;

use crate::schema::ServerSpec;

/// The shape drawn at a series' points and in its legend entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled triangle.
    Triangle,
    /// A filled square.
    Square,
    /// A diagonal cross.
    Cross,
}

/// How a server is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Line and marker colour.
    pub colour: RGBColor,
    /// Marker shape.
    pub marker: Marker,
    /// Whether the line is dashed (a second series of the same server, e.g. more clients).
    pub dashed: bool,
    /// The family the legend lists it under; `None` for servers the registry does not know.
    pub family: Option<Family>,
}

/// The hand-picked shades of each family's hue, darkest first (Okabe and Ito's
/// colour-blind-safe colours where a family has one): the first models of a family take them
/// in registry order, and further models take [`shade`]'s computed ones.
fn picked(family: Family) -> &'static [RGBColor] {
    match family {
        Family::IterativeAndPools => &[
            RGBColor(213, 94, 0),
            RGBColor(230, 159, 0),
            RGBColor(140, 81, 10),
            RGBColor(250, 190, 110),
            RGBColor(180, 120, 40),
        ],
        Family::ThreadsAndProcesses => &[RGBColor(204, 121, 167), RGBColor(136, 34, 85)],
        Family::EventLoops => &[
            RGBColor(0, 114, 178),
            RGBColor(86, 180, 233),
            RGBColor(0, 50, 110),
            RGBColor(120, 160, 210),
            RGBColor(40, 80, 160),
            RGBColor(150, 210, 240),
        ],
        Family::Runtimes => &[
            RGBColor(0, 158, 115),
            RGBColor(17, 100, 51),
            RGBColor(153, 153, 51),
            RGBColor(100, 200, 140),
            RGBColor(60, 120, 90),
        ],
    }
}

/// The shade of the `rank`-th model of `family`: a hand-picked one while they last, then the
/// family's first colour mixed alternately towards black and white, a little further for each
/// model (at most 90 % of the way), so that a family takes a dozen more models in its own hue
/// before a shade repeats; the marker tells those apart too.
pub fn shade(family: Family, rank: usize) -> RGBColor {
    let picked = picked(family);
    if let Some(colour) = picked.get(rank) {
        return *colour;
    }
    let extra = rank - picked.len();
    let step = 0.18 + 0.12 * (extra / 2) as f64;
    let RGBColor(r, g, b) = picked[0];
    let towards = if extra % 2 == 0 { 0.0 } else { 255.0 };
    let mix = |c: u8| (f64::from(c) + (towards - f64::from(c)) * step.min(0.9)).round() as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Cross,
];

/// The look of the server `label` (a model name, maybe with its arguments). A Python model
/// takes its Rust counterpart's colour and family with a marker of its own, so that each
/// Python server is drawn beside the Rust one built the same way.
pub fn style(label: &str) -> Style {
    if let Some(py) = echo_server::python::find(label) {
        return python(py);
    }
    let Some(model) = Model::from_name(ServerSpec::model_of(label)) else {
        return unknown(label);
    };
    let family = model.family();
    let rank = Model::ALL
        .iter()
        .filter(|m| m.family() == family)
        .position(|m| *m == model)
        .unwrap_or(0);
    Style {
        colour: shade(family, rank),
        marker: MARKERS[rank % MARKERS.len()],
        dashed: false,
        family: Some(family),
    }
}

/// A Python model's look: its counterpart's colour, and the next marker after the counterpart's
/// and after each Python model before it with the same counterpart.
fn python(py: &echo_server::python::PythonModel) -> Style {
    let rust = style(py.counterpart);
    let siblings = echo_server::python::MODELS
        .iter()
        .take_while(|m| m.name != py.name)
        .filter(|m| m.counterpart == py.counterpart)
        .count();
    let own = MARKERS.iter().position(|m| *m == rust.marker).unwrap_or(0);
    Style {
        marker: MARKERS[(own + 1 + siblings) % MARKERS.len()],
        ..rust
    }
}

/// A grey of its own for a server the registry does not know, from its name (stable).
fn unknown(label: &str) -> Style {
    let hash = label
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let grey = 60 + (hash % 5) as u8 * 30;
    Style {
        colour: RGBColor(grey, grey, grey),
        marker: MARKERS[(hash / 5) as usize % MARKERS.len()],
        dashed: false,
        family: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_has_its_own_look_by_family() {
        let looks: Vec<Style> = Model::ALL.iter().map(|m| style(m.name())).collect();
        for (i, a) in looks.iter().enumerate() {
            assert_eq!(a.family, Some(Model::ALL[i].family()));
            for b in &looks[i + 1..] {
                assert!(
                    a.colour != b.colour || a.marker != b.marker,
                    "two models look alike"
                );
            }
        }
        for family in Family::ALL {
            // A family's shades never run out: the first are hand-picked, the rest computed,
            // all different.
            let shades: Vec<RGBColor> = (0..12).map(|rank| shade(family, rank)).collect();
            for (i, a) in shades.iter().enumerate() {
                assert!(
                    shades[i + 1..].iter().all(|b| a != b),
                    "{family:?}: {shades:?}"
                );
            }
        }
        // Arguments do not change a model's look, and unknown servers are grey.
        assert_eq!(style("thread-pool(64)"), style("thread-pool"));
        let other = style("nginx");
        assert_eq!(other.family, None);
        assert_eq!(other.colour.0, other.colour.1);
        assert_eq!(style("nginx"), other, "stable");
    }
}
