//! Inline SVG plots: series of points over an x axis that starts at 0, shaded
//! x intervals (bands), a grid with round ticks and a legend on the right.
//! Pure drawing: it knows points, colours and text, nothing of observations or
//! runs (`html.rs` turns those into a `Plot`).

use std::fmt::Write as _;

use super::series::{downsample, Segment};

/// Points per series above which a series is downsampled (min and max kept),
/// so a long run does not make a page of megabytes.
const MAX_POINTS: usize = 2000;

/// Line colours for nodes and series (colour-blind friendly, Okabe-Ito first).
pub(super) const PALETTE: [&str; 12] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#000000",
    "#bcbd22", "#8c564b", "#17becf", "#9467bd",
];

// Geometry of the view box, in its units.
const WIDTH: f64 = 1120.0;
const LEFT: f64 = 66.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 14.0;
const PLOT_H: f64 = 230.0;
/// Width of the plot area; the legend sits in `RIGHT`.
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const BOTTOM: f64 = 46.0;
/// Height of a legend row.
const ROW: f64 = 18.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Style {
    Line,
    /// A reference line: drawn under the data, and alone it is not data.
    Dashed,
    Dots,
}

pub(super) struct Series {
    pub(super) label: String,
    pub(super) colour: &'static str,
    pub(super) style: Style,
    /// Stroke width of lines.
    pub(super) width: f64,
    pub(super) segments: Vec<Segment>,
}

/// An x interval shaded across the plot area, with a tooltip.
pub(super) struct Band {
    pub(super) from: f64,
    pub(super) to: f64,
    pub(super) colour: &'static str,
    pub(super) title: String,
}

/// A legend entry for the bands of one colour.
pub(super) struct BandKey {
    pub(super) colour: &'static str,
    pub(super) label: String,
}

pub(super) struct Plot<'a> {
    /// Unique on the page: it names the section and the clip path.
    pub(super) id: &'a str,
    pub(super) title: &'a str,
    pub(super) caption: &'a str,
    pub(super) y_label: &'a str,
    /// The x axis runs from 0 to `span` (to 1 when `span` is not positive).
    pub(super) span: f64,
    pub(super) series: Vec<Series>,
    /// Whole y ticks only (counts).
    pub(super) integer_y: bool,
    pub(super) bands: &'a [Band],
    pub(super) band_keys: &'a [BandKey],
    /// An extra legend line.
    pub(super) note: Option<String>,
}

/// Appends `p` as a `<section class="plot">` holding its title, caption and SVG.
pub(super) fn plot(h: &mut String, p: &Plot) {
    let x_max = if p.span > 0.0 { p.span } else { 1.0 };
    let series: Vec<Series> = p.series.iter().map(|s| near_axis(s, x_max)).collect();
    let axes = Axes::fit(&series, x_max, p.integer_y);
    // The legend may be taller than the plot.
    let rows = series.len() + p.band_keys.len() + usize::from(p.note.is_some()) + 1;
    let height = (TOP + PLOT_H + BOTTOM).max(TOP + rows as f64 * ROW + 10.0);

    open(h, p, height);
    // Bands under the grid, so the grid stays visible through them.
    h.push_str("<g class=\"faults\">\n");
    for b in p.bands {
        band(h, b, &axes);
    }
    h.push_str("</g>\n");
    grid(h, &axes);
    frame(h, p.y_label);
    lines(h, p.id, &series, &axes);
    legend(h, &series, p.band_keys, p.note.as_deref());
    h.push_str("</g>\n</svg>\n</section>\n");
}

/// `s` without the points that cannot be drawn or lie far off the axis, thinned
/// to its share of `MAX_POINTS`.
fn near_axis(s: &Series, x_max: f64) -> Series {
    let total: usize = s.segments.iter().map(Vec::len).sum();
    let segments = s
        .segments
        .iter()
        .map(|seg| {
            let seg: Segment = seg
                .iter()
                .copied()
                .filter(|(x, y)| {
                    // Just outside the axis: kept, the clip cuts the line at
                    // the border.
                    x.is_finite() && y.is_finite() && *x >= -x_max && *x <= 2.0 * x_max
                })
                .collect();
            let budget = (MAX_POINTS * seg.len()).div_ceil(total.max(1)).max(4);
            downsample(&seg, budget)
        })
        .filter(|seg| !seg.is_empty())
        .collect();
    Series {
        label: s.label.clone(),
        colour: s.colour,
        style: s.style,
        width: s.width,
        segments,
    }
}

/// The ranges and tick steps of both axes, and the mapping to view-box units.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axes {
    x_max: f64,
    x_step: f64,
    y_max: f64,
    y_step: f64,
}

impl Axes {
    /// Fits y to what lies on the x axis `0..=x_max` (never below 1), with a
    /// little headroom, rounded up to a tick.
    fn fit(series: &[Series], x_max: f64, integer_y: bool) -> Axes {
        let y_data = series
            .iter()
            .flat_map(|s| s.segments.iter().flatten())
            .filter(|p| on_axis(p, x_max))
            .map(|p| p.1)
            .fold(0.0_f64, f64::max);
        let y_data = if y_data > 0.0 { y_data } else { 1.0 };
        let mut y_step = nice_step(y_data / 5.0);
        if integer_y {
            y_step = y_step.max(1.0);
        }
        Axes {
            x_max,
            x_step: nice_step(x_max / 10.0),
            y_max: ((y_data * 1.05 / y_step).ceil() * y_step).max(y_step),
            y_step,
        }
    }

    fn x(&self, x: f64) -> f64 {
        LEFT + x / self.x_max * PLOT_W
    }

    fn y(&self, y: f64) -> f64 {
        TOP + PLOT_H - y / self.y_max * PLOT_H
    }
}

fn on_axis(p: &(f64, f64), x_max: f64) -> bool {
    p.0 >= 0.0 && p.0 <= x_max
}

/// The section, its heading, and the SVG up to the plot area's background.
fn open(h: &mut String, p: &Plot, height: f64) {
    let _ = write!(
        h,
        "<section class=\"plot\" id=\"plot-{id}\">\n<h3>{}</h3>\n<p>{}</p>\n\
         <svg viewBox=\"0 0 {WIDTH} {}\" role=\"img\" \
         aria-label=\"{}\" font-size=\"12\" font-family=\"system-ui, sans-serif\">\n\
         <title>{}</title>\n<defs><clipPath id=\"clip-{id}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>\n",
        esc(p.title),
        esc(p.caption),
        f(height),
        esc(p.title),
        esc(p.title),
        f(LEFT),
        f(TOP),
        f(PLOT_W),
        f(PLOT_H),
        id = p.id,
    );
    let _ = writeln!(
        h,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ffffff\" stroke=\"#c9ced6\"/>",
        f(LEFT),
        f(TOP),
        f(PLOT_W),
        f(PLOT_H)
    );
}

/// Shades `b` where it meets the x axis; nothing when it misses it.
fn band(h: &mut String, b: &Band, axes: &Axes) {
    let x_max = axes.x_max;
    let (from, to) = (b.from, b.to);
    if !from.is_finite() || !to.is_finite() || to < 0.0 || from > x_max {
        return;
    }
    let from = from.clamp(0.0, x_max);
    let to = to.clamp(0.0, x_max).max(from);
    // At least 2 px wide, so a short fault stays visible, inside the plot area.
    let width = (axes.x(to) - axes.x(from)).max(2.0);
    let x0 = axes.x(from).min(axes.x(x_max) - width);
    // The class says "fault": that is what the report's bands are, and what a
    // reader of the page's source looks for.
    let _ = writeln!(
        h,
        "<rect class=\"fault\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{c}\" fill-opacity=\"0.13\" \
         stroke=\"{c}\" stroke-opacity=\"0.35\"><title>{}</title></rect>",
        f(x0),
        f(TOP),
        f(width),
        f(PLOT_H),
        esc(&b.title),
        c = b.colour,
    );
}

/// Grid lines with their tick labels.
fn grid(h: &mut String, axes: &Axes) {
    h.push_str("<g class=\"axes\" stroke=\"#e6e9ee\">\n");
    let y_ticks = (axes.y_max / axes.y_step).round() as usize;
    for i in 0..=y_ticks {
        let v = i as f64 * axes.y_step;
        let y = axes.y(v);
        let _ = writeln!(
            h,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#57606a\" stroke=\"none\">{}</text>",
            f(LEFT),
            f(y),
            f(LEFT + PLOT_W),
            f(y),
            f(LEFT - 6.0),
            f(y + 4.0),
            tick_label(v, axes.y_step)
        );
    }
    // The epsilon keeps the last tick when x_max is a multiple of the step
    // but the division rounds just below it.
    let x_ticks = (axes.x_max / axes.x_step + 1e-9).floor() as usize;
    for i in 0..=x_ticks {
        let v = i as f64 * axes.x_step;
        let x = axes.x(v);
        let _ = writeln!(
            h,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#57606a\" stroke=\"none\">{}</text>",
            f(x),
            f(TOP),
            f(x),
            f(TOP + PLOT_H),
            f(x),
            f(TOP + PLOT_H + 16.0),
            tick_label(v, axes.x_step)
        );
    }
    h.push_str("</g>\n");
}

/// The plot area's border and the axis titles.
fn frame(h: &mut String, y_label: &str) {
    let _ = writeln!(
        h,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#8c959f\"/>",
        f(LEFT),
        f(TOP),
        f(PLOT_W),
        f(PLOT_H)
    );
    let _ = writeln!(
        h,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#3b4252\">seconds since start</text>",
        f(LEFT + PLOT_W / 2.0),
        f(TOP + PLOT_H + 36.0)
    );
    let _ = writeln!(
        h,
        "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\" fill=\"#3b4252\">{}</text>",
        f(16.0),
        f(TOP + PLOT_H / 2.0),
        esc(y_label)
    );
}

/// The series, clipped to the plot area, or "no data" when none has a point
/// on the x axis.
fn lines(h: &mut String, id: &str, series: &[Series], axes: &Axes) {
    let _ = writeln!(h, "<g clip-path=\"url(#clip-{id})\" fill=\"none\">");
    // Reference lines (dashed) first, under the data.
    let (dashed, data): (Vec<&Series>, Vec<&Series>) =
        series.iter().partition(|s| s.style == Style::Dashed);
    for s in dashed.into_iter().chain(data) {
        let d = path(&s.segments, s.style, axes);
        if d.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<path d=\"{d}\" {}><title>{}</title></path>",
            stroke(s),
            esc(&s.label)
        );
    }
    h.push_str("</g>\n");
    let has_data = series.iter().any(|s| {
        s.style != Style::Dashed && s.segments.iter().flatten().any(|p| on_axis(p, axes.x_max))
    });
    if !has_data {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#8c959f\" font-size=\"15\">no data</text>",
            f(LEFT + PLOT_W / 2.0),
            f(TOP + PLOT_H / 2.0)
        );
    }
}

/// One row per series, then per band key, then the note; right of the plot
/// area. Opens the legend's group; `plot` closes it with the SVG.
fn legend(h: &mut String, series: &[Series], band_keys: &[BandKey], note: Option<&str>) {
    let lx = LEFT + PLOT_W + 18.0;
    let mut ly = TOP + 8.0;
    h.push_str("<g class=\"legend\">\n");
    for s in series {
        let swatch = match s.style {
            Style::Dots => format!(
                "<path d=\"M{},{}h0M{},{}h0M{},{}h0\" {}/>",
                f(lx + 2.0),
                f(ly + 2.0),
                f(lx + 9.0),
                f(ly - 2.0),
                f(lx + 16.0),
                f(ly + 1.0),
                stroke(s)
            ),
            Style::Line | Style::Dashed => {
                format!("<path d=\"M{},{}h20\" {}/>", f(lx), f(ly), stroke(s))
            }
        };
        let _ = writeln!(
            h,
            "{swatch}<text x=\"{}\" y=\"{}\" fill=\"#1d2330\">{}</text>",
            f(lx + 28.0),
            f(ly + 4.0),
            esc(&truncate(&s.label, 22))
        );
        ly += ROW;
    }
    for k in band_keys {
        let _ = writeln!(
            h,
            "<rect x=\"{}\" y=\"{}\" width=\"20\" height=\"12\" fill=\"{c}\" fill-opacity=\"0.18\" stroke=\"{c}\" stroke-opacity=\"0.5\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#1d2330\">{}</text>",
            f(lx),
            f(ly - 6.0),
            f(lx + 28.0),
            f(ly + 4.0),
            esc(&k.label),
            c = k.colour,
        );
        ly += ROW;
    }
    if let Some(n) = note {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" fill=\"#6e7781\">{}</text>",
            f(lx),
            f(ly + 4.0),
            esc(&truncate(n, 30))
        );
    }
}

/// Path data for `segments`: a polyline per segment, or a zero-length stroke
/// (a round dot, given a round cap) per point for dots and lone points.
fn path(segments: &[Segment], style: Style, axes: &Axes) -> String {
    let mut d = String::new();
    for seg in segments {
        if style == Style::Dots || seg.len() == 1 {
            for &(x, y) in seg {
                let _ = write!(d, "M{},{}h0", f(axes.x(x)), f(axes.y(y)));
            }
        } else {
            for (i, &(x, y)) in seg.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{},{}",
                    if i == 0 { "M" } else { "L" },
                    f(axes.x(x)),
                    f(axes.y(y))
                );
            }
        }
    }
    d
}

fn stroke(s: &Series) -> String {
    match s.style {
        Style::Line => format!(
            "stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" stroke-linecap=\"round\" fill=\"none\"",
            s.colour,
            num(s.width, 1)
        ),
        Style::Dashed => format!(
            "stroke=\"{}\" stroke-width=\"{}\" stroke-dasharray=\"6 4\" fill=\"none\"",
            s.colour,
            num(s.width, 1)
        ),
        Style::Dots => format!(
            "stroke=\"{}\" stroke-width=\"{}\" stroke-linecap=\"round\" stroke-opacity=\"0.55\" fill=\"none\"",
            s.colour,
            num(s.width, 1)
        ),
    }
}

// ---------------------------------------------------------------- text

/// 1, 2 or 5 times a power of ten, at least `raw` (1 for nonsense).
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let exp = 10f64.powf(raw.log10().floor());
    let m = raw / exp;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * exp
}

/// `v` with as many decimals as `step` needs to tell ticks apart (at most 4).
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(4)
    };
    num(v, decimals)
}

/// A number with `decimals` decimals; "0" when it is not finite.
pub(super) fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        let s = format!("{v:.decimals$}");
        // No "-0".
        if s.trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            s.trim_start_matches('-').to_owned()
        } else {
            s
        }
    } else {
        "0".to_owned()
    }
}

/// An SVG coordinate.
fn f(v: f64) -> String {
    num(v, 1)
}

/// At most `max` characters, the last an ellipsis when `s` was cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Escapes text for HTML or SVG content and quoted attributes.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
