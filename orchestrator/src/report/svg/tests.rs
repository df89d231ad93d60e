//! Ticks, number text, geometry and a few whole plots, with the exact text
//! expected.

use super::*;

/// x 0..10 over the plot width, y 0..8 over its height.
const AXES: Axes = Axes {
    x_max: 10.0,
    x_step: 1.0,
    y_max: 8.0,
    y_step: 2.0,
};

fn line(label: &str, style: Style, segments: Vec<Segment>) -> Series {
    Series {
        label: label.to_owned(),
        colour: "#123456",
        style,
        width: 2.0,
        segments,
    }
}

fn render(p: &Plot) -> String {
    let mut h = String::new();
    plot(&mut h, p);
    h
}

fn empty_plot<'a>(series: Vec<Series>, bands: &'a [Band], keys: &'a [BandKey]) -> Plot<'a> {
    Plot {
        id: "p",
        title: "T <1>",
        caption: "c & d",
        y_label: "y's",
        span: 10.0,
        series,
        integer_y: false,
        bands,
        band_keys: keys,
        note: None,
    }
}

#[test]
fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
    assert_eq!(nice_step(0.3), 0.5);
    assert_eq!(nice_step(1.0), 1.0);
    assert_eq!(nice_step(1.4), 2.0);
    assert_eq!(nice_step(7.0), 10.0);
    assert_eq!(nice_step(12.0), 20.0);
    assert_eq!(nice_step(250.0), 500.0);
    for nonsense in [0.0, -3.0, f64::NAN, f64::INFINITY] {
        assert_eq!(nice_step(nonsense), 1.0, "{nonsense}");
    }
}

#[test]
fn tick_labels_have_the_decimals_their_step_needs() {
    assert_eq!(tick_label(40.0, 10.0), "40");
    assert_eq!(tick_label(2.0, 0.5), "2.0");
    assert_eq!(tick_label(0.25, 0.05), "0.25");
    // At most four decimals.
    assert_eq!(tick_label(0.00012, 1e-7), "0.0001");
}

#[test]
fn numbers_never_read_minus_zero_nan_or_inf() {
    assert_eq!(num(-1.26, 1), "-1.3");
    assert_eq!(num(-0.04, 1), "0.0");
    assert_eq!(num(-0.0, 0), "0");
    assert_eq!(num(f64::NAN, 1), "0");
    assert_eq!(num(f64::NEG_INFINITY, 1), "0");
    assert_eq!(f(12.345), "12.3");
}

#[test]
fn truncate_counts_characters_and_marks_the_cut() {
    assert_eq!(truncate("abcd", 4), "abcd");
    assert_eq!(truncate("abcdef", 4), "abc…");
    assert_eq!(truncate("ääää", 3), "ää…");
}

#[test]
fn esc_escapes_markup_and_both_quotes() {
    assert_eq!(
        esc("<a href='x'>&\"ü"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;ü"
    );
}

#[test]
fn axes_fit_what_lies_on_the_x_axis_with_headroom() {
    let s = [line(
        "a",
        Style::Line,
        vec![vec![(0.0, 3.0), (5.0, 7.0), (20.0, 1000.0), (-1.0, 500.0)]],
    )];
    // 7 (the points off the axis do not count) * 1.05, up to a step of 2.
    assert_eq!(Axes::fit(&s, 10.0, false), AXES);
    // Counts tick by whole numbers.
    let small = [line("a", Style::Line, vec![vec![(1.0, 0.2)]])];
    let fractional = Axes::fit(&small, 10.0, false).y_step;
    assert!((fractional - 0.05).abs() < 1e-12, "{fractional}");
    let counts = Axes::fit(&small, 10.0, true);
    assert_eq!((counts.y_step, counts.y_max), (1.0, 1.0));
    // Nothing: y still spans something.
    assert!(Axes::fit(&[], 10.0, false).y_max > 1.0);
    // View-box corners of the plot area.
    assert_eq!((AXES.x(0.0), AXES.x(10.0)), (LEFT, LEFT + PLOT_W));
    assert_eq!((AXES.y(0.0), AXES.y(8.0)), (TOP + PLOT_H, TOP));
}

#[test]
fn paths_are_polylines_and_dots_are_zero_length_strokes() {
    let segments = vec![vec![(0.0, 0.0), (10.0, 8.0)], vec![(5.0, 4.0)]];
    assert_eq!(
        path(&segments, Style::Line, &AXES),
        "M66.0,244.0L930.0,14.0M498.0,129.0h0"
    );
    assert_eq!(
        path(&segments[..1], Style::Dots, &AXES),
        "M66.0,244.0h0M930.0,14.0h0"
    );
    assert_eq!(path(&[], Style::Line, &AXES), "");
}

#[test]
fn bands_are_clamped_to_the_axis_and_at_least_two_units_wide() {
    let band_at = |from: f64, to: f64| {
        let mut h = String::new();
        let b = Band {
            from,
            to,
            colour: "#d1242f",
            title: "cut <n1>".into(),
        };
        band(&mut h, &b, &AXES);
        h
    };
    assert_eq!(
        band_at(2.0, 4.0),
        "<rect class=\"fault\" x=\"238.8\" y=\"14.0\" width=\"172.8\" height=\"230.0\" \
         fill=\"#d1242f\" fill-opacity=\"0.13\" stroke=\"#d1242f\" stroke-opacity=\"0.35\">\
         <title>cut &lt;n1&gt;</title></rect>\n"
    );
    // Over both ends: the whole width.
    assert!(band_at(-5.0, 50.0).contains("x=\"66.0\" y=\"14.0\" width=\"864.0\""));
    // An instant at the very end: 2 wide, kept inside.
    assert!(band_at(10.0, 10.0).contains("x=\"928.0\" y=\"14.0\" width=\"2.0\""));
    // Off the axis or not a time: nothing.
    for (from, to) in [
        (-3.0, -1.0),
        (11.0, 12.0),
        (f64::NAN, 1.0),
        (1.0, f64::INFINITY),
    ] {
        assert_eq!(band_at(from, to), "", "{from}..{to}");
    }
}

#[test]
fn a_plot_draws_reference_lines_under_the_data_and_a_legend_row_each() {
    let bands = [Band {
        from: 2.0,
        to: 4.0,
        colour: "#d1242f",
        title: "cut".into(),
    }];
    let keys = [BandKey {
        colour: "#d1242f",
        label: "partition (fault)".into(),
    }];
    let mut p = empty_plot(
        vec![
            line("data", Style::Line, vec![vec![(0.0, 1.0), (10.0, 7.0)]]),
            line("ref", Style::Dashed, vec![vec![(0.0, 4.0), (10.0, 4.0)]]),
        ],
        &bands,
        &keys,
    );
    p.note = Some("a note longer than thirty characters".into());
    let h = render(&p);
    assert!(h.starts_with(
        "<section class=\"plot\" id=\"plot-p\">\n<h3>T &lt;1&gt;</h3>\n<p>c &amp; d</p>\n"
    ));
    assert!(h.contains("<clipPath id=\"clip-p\">"));
    assert!(h.contains("<g clip-path=\"url(#clip-p)\" fill=\"none\">"));
    assert!(h.contains("rotate(-90)\" text-anchor=\"middle\" fill=\"#3b4252\">y&#39;s</text>"));
    let (r, d) = (h.find("<title>ref</title>"), h.find("<title>data</title>"));
    assert!(r.unwrap() < d.unwrap(), "dashed first");
    // Legend: two series, one band key, the note cut to 30 characters.
    assert!(h.contains(">partition (fault)</text>"));
    assert!(h.contains(">a note longer than thirty cha…</text>"));
    assert_eq!(h.matches("<rect class=\"fault\"").count(), 1);
    assert!(!h.contains(">no data<"));
    assert!(h.ends_with("</g>\n</svg>\n</section>\n"));
}

#[test]
fn a_plot_without_data_on_the_axis_says_so() {
    // A reference line alone, and data only off the axis.
    let p = empty_plot(
        vec![
            line("ref", Style::Dashed, vec![vec![(0.0, 4.0), (10.0, 4.0)]]),
            line("late", Style::Line, vec![vec![(15.0, 1.0)]]),
        ],
        &[],
        &[],
    );
    assert!(render(&p).contains(">no data</text>"));
}

#[test]
fn many_series_make_the_plot_taller_for_the_legend() {
    let few = render(&empty_plot(vec![], &[], &[]));
    assert!(few.contains("viewBox=\"0 0 1120 290.0\""), "{few}");
    // 20 rows of legend and one spare: 14 + 21 * 18 + 10.
    let series = (0..20)
        .map(|i| line(&format!("s{i}"), Style::Line, vec![]))
        .collect();
    let many = render(&empty_plot(series, &[], &[]));
    assert!(many.contains("viewBox=\"0 0 1120 402.0\""));
}

#[test]
fn near_axis_drops_what_cannot_be_drawn_and_thins_long_series() {
    let s = line(
        "a",
        Style::Line,
        vec![
            vec![
                (f64::NAN, 1.0),
                (-10.0, 1.0),
                (-10.5, 1.0),
                (1.0, f64::INFINITY),
            ],
            vec![(0.0, 1.0), (20.0, 2.0), (20.5, 3.0)],
        ],
    );
    // Within one axis length either side kept (the clip path cuts them);
    // segments left empty dropped.
    assert_eq!(
        near_axis(&s, 10.0).segments,
        [vec![(-10.0, 1.0)], vec![(0.0, 1.0), (20.0, 2.0)]]
    );
    let long = line(
        "b",
        Style::Dots,
        vec![(0..3 * MAX_POINTS)
            .map(|i| (i as f64 / 1000.0, 1.0))
            .collect()],
    );
    let thinned = near_axis(&long, 10.0);
    assert!(thinned.segments[0].len() <= MAX_POINTS);
}
