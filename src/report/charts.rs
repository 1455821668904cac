//! Chart geometry: coordinates computed here, drawn as SVG elements by the template, so
//! every text in a chart goes through the template's escaping.

use serde::Serialize;

use super::data::Day;

/// The trend chart's drawing area in SVG user units.
pub const TREND_W: f64 = 900.0;
pub const TREND_H: f64 = 260.0;
const PAD_L: f64 = 44.0;
const PAD_R: f64 = 44.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 28.0;

#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub width: f64,
    pub height: f64,
    /// Calls per day (right axis).
    pub bars: Vec<Bar>,
    /// Average percentage per day with calls (left axis), as `x,y x,y …`.
    pub line: String,
    pub dots: Vec<Dot>,
    pub y_ticks: Vec<Tick>,
    pub calls_ticks: Vec<Tick>,
    pub x_labels: Vec<Tick>,
    pub plot: Rect,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub day: String,
    pub calls: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub day: String,
    pub avg: String,
    /// Unrounded, for the page's data attributes.
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub pos: f64,
    pub label: String,
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Bars of calls per day under a line of the average percentage (0–100 on the left axis).
pub fn trend(days: &[Day], fmt_pct: impl Fn(f64) -> String) -> Trend {
    let plot = Rect {
        x: PAD_L,
        y: PAD_T,
        w: TREND_W - PAD_L - PAD_R,
        h: TREND_H - PAD_T - PAD_B,
    };
    let n = days.len().max(1) as f64;
    let slot = plot.w / n;
    let max_calls = days
        .iter()
        .map(|d| d.calls_scored)
        .max()
        .unwrap_or(0)
        .max(1);
    let calls_top = nice_ceiling(max_calls);
    let y_of_pct = |p: f64| plot.y + plot.h * (1.0 - p.clamp(0.0, 100.0) / 100.0);
    let mut bars = Vec::new();
    let mut dots = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let cx = plot.x + slot * (i as f64 + 0.5);
        if d.calls_scored > 0 {
            let h = plot.h * d.calls_scored as f64 / calls_top as f64;
            bars.push(Bar {
                x: r1(cx - slot * 0.35),
                y: r1(plot.y + plot.h - h),
                w: r1((slot * 0.7).max(0.5)),
                h: r1(h),
                day: d.day.to_string(),
                calls: d.calls_scored,
            });
        }
        if let Some(avg) = d.avg_pct {
            dots.push(Dot {
                x: r1(cx),
                y: r1(y_of_pct(avg)),
                day: d.day.to_string(),
                avg: fmt_pct(avg),
                value: format!("{avg:.6}"),
            });
        }
    }
    let line = dots
        .iter()
        .map(|d| format!("{},{}", d.x, d.y))
        .collect::<Vec<_>>()
        .join(" ");
    let y_ticks = (0..=4)
        .map(|k| Tick {
            pos: r1(y_of_pct(k as f64 * 25.0)),
            label: format!("{}%", k * 25),
        })
        .collect();
    let calls_ticks = (0..=4)
        .map(|k| Tick {
            pos: r1(plot.y + plot.h * (1.0 - k as f64 / 4.0)),
            label: (calls_top * k / 4).to_string(),
        })
        .collect();
    // At most about ten date labels, whatever the range.
    let every = days.len().div_ceil(10).max(1);
    let x_labels = days
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, d)| Tick {
            pos: r1(plot.x + slot * (i as f64 + 0.5)),
            label: d.day.format("%d.%m").to_string(),
        })
        .collect();
    Trend {
        width: TREND_W,
        height: TREND_H,
        bars,
        line,
        dots,
        y_ticks,
        calls_ticks,
        x_labels,
        plot,
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ not below `v`, a multiple of 4 where possible, so the
/// four gridlines fall on round numbers.
fn nice_ceiling(v: i64) -> i64 {
    let mut base = 1;
    loop {
        for m in [4, 8, 20, 40] {
            if m * base >= v {
                return m * base;
            }
        }
        base *= 10;
    }
}

pub const SPARK_W: f64 = 120.0;
pub const SPARK_H: f64 = 24.0;

/// A sparkline's points over the whole range (`index` is the day's position in it, of
/// `slots`), 0–100 % bottom to top.
pub fn sparkline(points: &[(usize, f64)], slots: usize) -> String {
    let step = if slots > 1 {
        (SPARK_W - 4.0) / (slots - 1) as f64
    } else {
        0.0
    };
    points
        .iter()
        .map(|(i, v)| {
            let x = 2.0 + step * *i as f64;
            let y = 2.0 + (SPARK_H - 4.0) * (1.0 - v.clamp(0.0, 100.0) / 100.0);
            format!("{},{}", r1(x), r1(y))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model-stability chart's drawing area.
pub const STABILITY_W: f64 = 900.0;
pub const STABILITY_H: f64 = 180.0;

/// Agreement per canary night (0–1 on the axis): with human QA and with the model's own
/// stored scores, and where something changed.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    pub width: f64,
    pub height: f64,
    pub plot: Rect,
    /// `x,y x,y …` of the nights with a figure.
    pub human: String,
    pub own: String,
    pub dots: Vec<Dot>,
    /// x of each night where something changed.
    pub marks: Vec<f64>,
    pub y_ticks: Vec<Tick>,
}

/// One canary night on the chart: agreement with humans, with itself, something changed.
pub type StabilityPoint = (Option<f64>, Option<f64>, bool);

/// `nights` oldest first.
pub fn stability(
    nights: &[StabilityPoint],
    labels: &[String],
    fmt: impl Fn(f64) -> String,
) -> Stability {
    let plot = Rect {
        x: PAD_L,
        y: PAD_T,
        w: STABILITY_W - PAD_L - PAD_R,
        h: STABILITY_H - PAD_T - PAD_B,
    };
    let n = nights.len();
    let x_of = |i: usize| {
        if n > 1 {
            plot.x + plot.w * i as f64 / (n - 1) as f64
        } else {
            plot.x + plot.w / 2.0
        }
    };
    let y_of = |v: f64| plot.y + plot.h * (1.0 - v.clamp(0.0, 1.0));
    let line = |pick: &dyn Fn(&StabilityPoint) -> Option<f64>| {
        nights
            .iter()
            .enumerate()
            .filter_map(|(i, night)| Some(format!("{},{}", r1(x_of(i)), r1(y_of(pick(night)?)))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Stability {
        width: STABILITY_W,
        height: STABILITY_H,
        human: line(&|n| n.0),
        own: line(&|n| n.1),
        dots: nights
            .iter()
            .enumerate()
            .filter_map(|(i, night)| {
                let v = night.0?;
                Some(Dot {
                    x: r1(x_of(i)),
                    y: r1(y_of(v)),
                    day: labels.get(i).cloned().unwrap_or_default(),
                    avg: fmt(v),
                    value: v.to_string(),
                })
            })
            .collect(),
        marks: nights
            .iter()
            .enumerate()
            .filter(|(_, night)| night.2)
            .map(|(i, _)| r1(x_of(i)))
            .collect(),
        y_ticks: [0.0, 0.5, 1.0]
            .iter()
            .map(|v| Tick {
                pos: r1(y_of(*v)),
                // Whole per cents: "100,0 %" would not fit left of the plot.
                label: format!("{:.0} %", v * 100.0),
            })
            .collect(),
        plot,
    }
}

/// A heatmap cell's colour for a share of the maximum: red at 0, amber at ½, green at 1.
pub fn heat_colour(share: f64) -> String {
    let hue = (share.clamp(0.0, 1.0) * 120.0).round();
    format!("hsl({hue},65%,78%)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn day(n: u32, calls: i64, avg: Option<f64>) -> Day {
        Day {
            day: NaiveDate::from_ymd_opt(2025, 8, n).unwrap(),
            calls_scored: calls,
            avg_pct: avg,
        }
    }

    #[test]
    fn trend_draws_a_bar_per_day_with_calls_and_a_dot_per_average() {
        let t = trend(
            &[
                day(1, 10, Some(50.0)),
                day(2, 0, None),
                day(3, 20, Some(100.0)),
            ],
            |v| format!("{v:.1}"),
        );
        assert_eq!(t.bars.len(), 2);
        assert_eq!(t.dots.len(), 2);
        // 100 % sits on the plot's top edge, the tallest bar reaches its calls tick.
        assert_eq!(t.dots[1].y, PAD_T);
        assert_eq!(t.calls_ticks.last().unwrap().label, "20");
        assert!((t.bars[1].h - t.plot.h).abs() < 0.1);
        assert_eq!(t.line.split(' ').count(), 2);
    }

    #[test]
    fn nice_ceilings_and_colours() {
        assert_eq!(nice_ceiling(1), 4);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(41), 80);
        assert_eq!(nice_ceiling(1000), 2000);
        assert_eq!(heat_colour(0.0), "hsl(0,65%,78%)");
        assert_eq!(heat_colour(1.0), "hsl(120,65%,78%)");
        assert_eq!(sparkline(&[(0, 100.0), (9, 0.0)], 10), "2,2 118,22");
    }
}
