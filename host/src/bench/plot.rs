//! `prereg bench --plot FILE.svg`: latency over time (every decision, swaps
//! marked) above a latency histogram, as one SVG file.

use std::path::Path;

use plotters::prelude::*;

use super::BenchReport;

/// Buckets of the histogram.
const BUCKETS: usize = 60;

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

/// Writes the chart of `report` to `path`.
pub fn write(report: &BenchReport, path: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(400);
    over_time(report, &top).map_err(|e| fail(&e))?;
    histogram(report, &bottom).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The latency axis: up to the 99.9th percentile and a bit, so that a few
/// outliers do not flatten the picture (they are drawn at the top edge).
fn latency_ceiling(report: &BenchReport) -> f64 {
    (report.latency.p999 * 1.2).max(1.0)
}

fn over_time<DB: DrawingBackend>(
    report: &BenchReport,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ceiling = latency_ceiling(report);
    let seconds = report.seconds.max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{} decisions on {} threads, {} registrations: {:.0}/s, p99 {:.0} µs",
                report.decisions, report.threads, report.registrations, report.decisions_per_second, report.latency.p99
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, 0.0..ceiling)?;
    chart.configure_mesh().x_desc("seconds").y_desc("latency (µs)").light_line_style(WHITE.mix(0.0)).draw()?;
    // Every decision as a dot would make a huge file: the slowest per pixel column.
    let columns = 900usize;
    let mut worst = vec![f64::NAN; columns];
    let mut median = vec![Vec::new(); columns];
    for s in &report.samples {
        let column = ((s.at / seconds) * columns as f64) as usize;
        if let Some(w) = worst.get_mut(column.min(columns - 1)) {
            *w = if w.is_nan() { s.micros } else { w.max(s.micros) };
        }
        if let Some(m) = median.get_mut(column.min(columns - 1)) {
            m.push(s.micros);
        }
    }
    let at = |i: usize| (i as f64 + 0.5) * seconds / columns as f64;
    chart
        .draw_series(LineSeries::new(
            worst.iter().enumerate().filter(|(_, w)| !w.is_nan()).map(|(i, w)| (at(i), w.min(ceiling))),
            RED.mix(0.6),
        ))?
        .label("slowest")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .draw_series(LineSeries::new(
            median.iter_mut().enumerate().filter(|(_, m)| !m.is_empty()).map(|(i, m)| {
                m.sort_unstable_by(f64::total_cmp);
                (at(i), m[m.len() / 2].min(ceiling))
            }),
            BLUE.stroke_width(2),
        ))?
        .label("median")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    for swap in &report.swap_times {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(*swap, 0.0), (*swap, ceiling)],
            GREEN.mix(0.7).stroke_width(1),
        )))?;
    }
    if !report.swap_times.is_empty() {
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label("policy swap")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

fn histogram<DB: DrawingBackend>(
    report: &BenchReport,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ceiling = latency_ceiling(report);
    let width = ceiling / BUCKETS as f64;
    let mut counts = vec![0u64; BUCKETS];
    for s in &report.samples {
        let bucket = ((s.micros / width) as usize).min(BUCKETS - 1);
        counts[bucket] += 1;
    }
    let tallest = counts.iter().copied().max().unwrap_or(1).max(1);
    let l = &report.latency;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("latency: p50 {:.0} µs, p90 {:.0}, p99 {:.0}, p99.9 {:.0}", l.p50, l.p90, l.p99, l.p999),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..ceiling, 0u64..tallest + tallest / 10)?;
    chart.configure_mesh().x_desc("latency (µs)").y_desc("decisions").light_line_style(WHITE.mix(0.0)).draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, count)| {
        let x0 = i as f64 * width;
        Rectangle::new([(x0, 0), (x0 + width * 0.9, *count)], BLUE.mix(0.6).filled())
    }))?;
    for (name, value) in [("p50", l.p50), ("p99", l.p99)] {
        chart.draw_series(std::iter::once(PathElement::new(vec![(value, 0), (value, tallest)], BLACK)))?;
        chart.draw_series(std::iter::once(Text::new(name.to_owned(), (value, tallest), ("sans-serif", 14))))?;
    }
    Ok(())
}
