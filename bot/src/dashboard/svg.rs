//! Inline SVG bar charts, drawn on the server. Colours come from CSS variables (the Telegram
//! theme), so one chart reads in light and dark themes.

use std::fmt::Write;

use crate::telegram::escape_html;

/// One series of a grouped bar chart: its name (legend) and CSS class (colour).
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
}

/// A horizontal reference line (e.g. the daily budget) with its label.
pub struct Line {
    pub value: i64,
    pub label: String,
}

const WIDTH: i64 = 360;
const HEIGHT: i64 = 160;
const BOTTOM: i64 = 20;
const TOP: i64 = 14;

/// A grouped bar chart: one group per label, one bar per series (`values[group][series]`),
/// scaled to the largest value or the line. `title` is the chart's accessible name.
pub fn bars(
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    values: &[Vec<i64>],
    line: Option<&Line>,
) -> String {
    let max = values
        .iter()
        .flatten()
        .copied()
        .chain(line.map(|l| l.value))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = HEIGHT - BOTTOM - TOP;
    let y = |v: i64| HEIGHT - BOTTOM - scale(v, max, plot);
    let groups = labels.len().max(1) as i64;
    let group_width = WIDTH / groups;
    let bar_width = ((group_width - 2) / series.len().max(1) as i64).max(1);
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" preserveAspectRatio="none">"#,
        escape_html(title)
    );
    for (g, row) in values.iter().enumerate() {
        let x0 = g as i64 * group_width + 1;
        for (s, value) in row.iter().enumerate() {
            // A value above zero shows as at least one unit.
            let top = y(*value).min(HEIGHT - BOTTOM - i64::from(*value > 0));
            let _ = write!(
                out,
                r#"<rect class="{}" x="{}" y="{top}" width="{bar_width}" height="{}"/>"#,
                series.get(s).map_or("", |s| s.class),
                x0 + s as i64 * bar_width,
                HEIGHT - BOTTOM - top,
            );
        }
    }
    // A label under every group when they fit, else under every seventh.
    let every = if groups <= 10 { 1 } else { 7 };
    for (g, label) in labels.iter().enumerate().filter(|(g, _)| g % every == 0) {
        let _ = write!(
            out,
            r#"<text class="axis" x="{}" y="{}">{}</text>"#,
            g as i64 * group_width + 1,
            HEIGHT - 6,
            escape_html(label)
        );
    }
    if let Some(line) = line {
        let ly = y(line.value);
        let _ = write!(
            out,
            r#"<line class="limit" x1="0" x2="{WIDTH}" y1="{ly}" y2="{ly}"/><text class="axis" x="{WIDTH}" y="{}" text-anchor="end">{}</text>"#,
            (ly - 3).max(10),
            escape_html(&line.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// The legend of `series`: a coloured mark and the name of each.
pub fn legend(series: &[Series<'_>]) -> String {
    let mut out = String::from(r#"<p class="legend">"#);
    for s in series {
        let _ = write!(
            out,
            r#"<span><i class="mark {}"></i>{}</span> "#,
            s.class,
            escape_html(s.name)
        );
    }
    out.push_str("</p>");
    out
}

/// A progress bar of `done` out of `total`.
pub fn progress(done: i64, total: i64) -> String {
    let width = if total > 0 {
        scale(done, total, WIDTH)
    } else {
        0
    };
    format!(
        r#"<svg class="progress" viewBox="0 0 {WIDTH} 8" preserveAspectRatio="none" role="img" aria-label="{done} of {total}"><rect class="track" x="0" y="0" width="{WIDTH}" height="8"/><rect class="s0" x="0" y="0" width="{width}" height="8"/></svg>"#
    )
}

/// `value / max` of `span`, exact in integers.
fn scale(value: i64, max: i64, span: i64) -> i64 {
    if max <= 0 {
        return 0;
    }
    (i128::from(value.clamp(0, max)) * i128::from(span) / i128::from(max)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_larger_of_values_and_line() {
        let series = [Series {
            name: "spend",
            class: "s0",
        }];
        let svg = bars(
            "Spend",
            &["12-01".into(), "12-02".into()],
            &series,
            &[vec![50], vec![100]],
            Some(&Line {
                value: 200,
                label: "limit".into(),
            }),
        );
        // The plot is 126 units high: 200 is the top, 100 half of it, 50 a quarter.
        assert!(svg.contains(r#"y="77" width="178" height="63""#), "{svg}");
        assert!(svg.contains(r#"y="109" width="178" height="31""#), "{svg}");
        assert!(svg.contains(r#"y1="14""#), "{svg}");
        assert!(svg.contains(">12-02</text>"));
    }

    #[test]
    fn progress_is_a_share_of_the_width() {
        assert!(progress(1, 4).contains(r#"class="s0" x="0" y="0" width="90""#));
        assert!(progress(0, 0).contains(r#"class="s0" x="0" y="0" width="0""#));
    }
}
