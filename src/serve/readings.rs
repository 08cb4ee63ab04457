//! `GET /api/v1/municipalities/{m}/sensors/{s}/readings`: a sensor's stored readings, as JSON
//! or CSV, raw or downsampled into fixed steps, a page at a time.
//!
//! - `from`, `to`: Unix ms, `to` exclusive (default: everything); `from > to` is 422.
//! - `format=json` (default) or `format=csv` (`text/csv`, a download named `<sensor>.csv`).
//! - `step=<seconds>`: one row per step with the `min`, `max`, `mean` and `count` of the
//!   readings in it; steps are aligned to the Unix epoch (a step starts at a multiple of
//!   `step` seconds), `ts` is its start, steps without readings are left out.
//! - `limit`: rows per answer (default 10 000, at most 100 000). When rows remain, the JSON
//!   answer has `next_from` and both formats have the header `Link: <same query with
//!   from=next_from>; rel="next"`: asking for it continues where this answer stopped, each row
//!   exactly once. Raw readings sharing a timestamp are never split between two pages (a page
//!   holds more than `limit` rows only when more than `limit` readings share one timestamp).
//!
//! Without `format`, `step` and `limit`, and with fewer than 10 000 readings, the JSON answer
//! is the same as before these parameters existed (`sensor_id`, `readings`).

use std::fmt::Write as _;
use std::sync::Arc;

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use twin::store::Point;
use twin::telemetry_files::civil_from_ms;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{malformed_request, path_parameters, query_error, AppState, READERS};

/// Rows per answer when `limit` is not given.
const DEFAULT_LIMIT: usize = 10_000;

/// The largest `limit`.
const MAX_LIMIT: usize = 100_000;

/// The readings route.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(readings))
}

/// The formats of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
enum Format {
    /// `application/json`.
    Json,
    /// `text/csv`.
    Csv,
}

/// The query of the readings route, as sent.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReadingsQuery {
    /// First time, Unix ms (default: the beginning).
    from: Option<i64>,
    /// End, Unix ms, exclusive (default: the end); not before `from`.
    to: Option<i64>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<Format>, inline)]
    format: Option<String>,
    /// Downsampling step, seconds (> 0): one row per step with min, max, mean and count.
    #[param(minimum = 1)]
    step: Option<i64>,
    /// Rows per answer (default 10 000).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<i64>,
}

/// A validated query.
#[derive(Debug, Clone, Copy)]
struct ReadingsRequest {
    from: Option<i64>,
    to: Option<i64>,
    format: Format,
    step_seconds: Option<i64>,
    limit: usize,
}

fn invalid(parameter: &str, why: impl std::fmt::Display) -> ApiError {
    malformed_request(format!("{parameter}: {why}"))
}

impl ReadingsQuery {
    /// The request, or a 422 naming the parameter at fault.
    fn validate(self) -> Result<ReadingsRequest, ApiError> {
        let format = match self.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(other) => return Err(invalid("format", format!("`{other}` is not json or csv"))),
        };
        if let Some(step) = self.step {
            // The step in ms must fit an i64 too.
            if step <= 0 || step.checked_mul(1000).is_none() {
                return Err(invalid("step", "must be a positive number of seconds"));
            }
        }
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(limit) => usize::try_from(limit)
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| invalid("limit", format!("must be between 1 and {MAX_LIMIT}")))?,
        };
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(invalid("from", "after to"));
            }
        }
        Ok(ReadingsRequest {
            from: self.from,
            to: self.to,
            format,
            step_seconds: self.step,
            limit,
        })
    }
}

/// A stored reading.
#[derive(Serialize, ToSchema)]
struct ReadingPoint {
    /// Unix ms.
    ts: i64,
    /// The value, in the sensor's unit.
    value: f64,
    /// Quality flags raised on it.
    flags: Vec<&'static str>,
}

/// The readings of a sensor.
#[derive(Serialize, ToSchema)]
struct SensorReadings {
    /// The sensor.
    sensor_id: String,
    /// Its readings in the range, oldest first.
    readings: Vec<ReadingPoint>,
    /// Present when readings remain: the `from` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_from: Option<i64>,
}

/// The statistics of the readings of one step.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
struct StepRow {
    /// Start of the step, Unix ms.
    ts: i64,
    /// Smallest value.
    min: f64,
    /// Largest value.
    max: f64,
    /// Mean value.
    mean: f64,
    /// Readings in the step (at least 1).
    count: u64,
}

/// The readings of a sensor, downsampled.
#[derive(Serialize, ToSchema)]
struct DownsampledReadings {
    /// The sensor.
    sensor_id: String,
    /// The step, seconds.
    step_seconds: i64,
    /// One row per step holding readings, oldest first.
    steps: Vec<StepRow>,
    /// Present when steps remain: the `from` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_from: Option<i64>,
}

/// The JSON answer: raw readings, or steps when `step` is given.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum ReadingsAnswer {
    Raw(SensorReadings),
    Downsampled(DownsampledReadings),
}

/// The step rows of time-ordered `points`, computed as the points go by (one step held at a
/// time).
struct Steps<I> {
    points: I,
    step_ms: i64,
    current: Option<StepSums>,
}

/// The running statistics of one step.
struct StepSums {
    start: i64,
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
}

impl StepSums {
    fn row(&self) -> StepRow {
        StepRow {
            ts: self.start,
            min: self.min,
            max: self.max,
            mean: self.sum / self.count as f64,
            count: self.count,
        }
    }
}

impl<I: Iterator<Item = Point>> Iterator for Steps<I> {
    type Item = StepRow;

    fn next(&mut self) -> Option<StepRow> {
        for point in self.points.by_ref() {
            let start = point
                .timestamp
                .saturating_sub(point.timestamp.rem_euclid(self.step_ms));
            match &mut self.current {
                Some(sums) if sums.start == start => {
                    sums.min = sums.min.min(point.value);
                    sums.max = sums.max.max(point.value);
                    sums.sum += point.value;
                    sums.count += 1;
                }
                current => {
                    let fresh = StepSums {
                        start,
                        min: point.value,
                        max: point.value,
                        sum: point.value,
                        count: 1,
                    };
                    if let Some(done) = current.replace(fresh) {
                        return Some(done.row());
                    }
                }
            }
        }
        self.current.take().map(|sums| sums.row())
    }
}

/// The first `limit` of time-ordered `rows` and, when rows remain, the time the next page
/// starts at. Rows at that time are all left to the next page, so that a page asked `from`
/// it holds each row exactly once; when the first `limit` rows all share one time, every row
/// of that time is taken instead (a page is never empty while rows remain).
fn page<T>(
    rows: impl Iterator<Item = T>,
    time: impl Fn(&T) -> i64,
    limit: usize,
) -> (Vec<T>, Option<i64>) {
    let mut rows = rows.peekable();
    let mut taken: Vec<T> = rows.by_ref().take(limit).collect();
    let Some(next_time) = rows.peek().map(&time) else {
        return (taken, None);
    };
    match taken.iter().rposition(|row| time(row) < next_time) {
        Some(last) => {
            taken.truncate(last + 1);
            (taken, Some(next_time))
        }
        None => {
            while let Some(row) = rows.next_if(|row| time(row) == next_time) {
                taken.push(row);
            }
            let next_time = rows.peek().map(&time);
            (taken, next_time)
        }
    }
}

/// Unix ms as RFC 3339 UTC with milliseconds (`2019-01-05T13:20:00.250Z`).
fn rfc3339_ms(ms: i64) -> String {
    let (year, month, day, hour, minute, second) = civil_from_ms(ms);
    let millis = ms.rem_euclid(1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// `text` as a CSV field (RFC 4180: quoted when it holds a comma, quote or line break).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A file name for `sensor` that needs no quoting in `Content-Disposition`.
fn file_name(sensor: &str) -> String {
    let safe: String = sensor
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.csv")
}

/// The `Link` header to the next page: this request's path and query with `from` replaced.
fn next_link(uri: &Uri, request: &ReadingsRequest, next_from: i64) -> Option<HeaderValue> {
    let mut query = format!("from={next_from}");
    if let Some(to) = request.to {
        let _ = write!(query, "&to={to}");
    }
    if request.format == Format::Csv {
        query.push_str("&format=csv");
    }
    if let Some(step) = request.step_seconds {
        let _ = write!(query, "&step={step}");
    }
    let _ = write!(query, "&limit={}", request.limit);
    HeaderValue::from_str(&format!("<{}?{query}>; rel=\"next\"", uri.path())).ok()
}

/// The CSV answer: `header` then `lines`, as a download named after `sensor`.
fn csv_response(sensor: &str, header_line: &str, lines: impl Iterator<Item = String>) -> Response {
    let mut body = String::from(header_line);
    body.push('\n');
    for line in lines {
        body.push_str(&line);
        body.push('\n');
    }
    let disposition = format!("attachment; filename=\"{}\"", file_name(sensor));
    (
        [
            (header::CONTENT_TYPE, "text/csv".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// A sensor's readings in a time range: raw or downsampled, JSON or CSV, a page at a time.
///
/// CSV columns: `timestamp,sensor_id,value,flags` (RFC 3339 UTC with milliseconds, flags
/// joined by `|`), or with `step`: `timestamp,sensor_id,min,max,mean,count` (`timestamp` the
/// step's start). More rows: `next_from` in JSON, and the `Link` header (`rel="next"`).
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/sensors/{sensor}/readings",
    tag = "twin",
    params(("municipality" = String, Path), ("sensor" = String, Path), ReadingsQuery),
    responses(
        (status = 200, description = "The readings (or steps)",
            headers(("Link" = String,
                description = "When rows remain: `<the next page>; rel=\"next\"`")),
            content((ReadingsAnswer = "application/json"), (String = "text/csv"))),
        (status = 404, description = "No such municipality or sensor", body = ErrorBody),
        (status = 422, description = "A malformed parameter (named): a time that is not an \
            integer, an unknown format, a step or limit out of range, from after to",
            body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn readings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadingsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (municipality, sensor) = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    let Query(query) = query.map_err(|rejection| malformed_request(rejection.body_text()))?;
    let request = query.validate()?;
    let from = request.from.unwrap_or(i64::MIN);
    let to = request.to.unwrap_or(i64::MAX);
    let points = state
        .runtime
        .readings(&municipality, &sensor, from, to)
        .await
        .map_err(query_error)?;
    let (mut response, next_from) = match request.step_seconds {
        None => {
            let (points, next_from) = page(points.into_iter(), |p| p.timestamp, request.limit);
            let response = match request.format {
                Format::Json => Json(ReadingsAnswer::Raw(SensorReadings {
                    readings: points
                        .iter()
                        .map(|point| ReadingPoint {
                            ts: point.timestamp,
                            value: point.value,
                            flags: point.flags.names(),
                        })
                        .collect(),
                    sensor_id: sensor,
                    next_from,
                }))
                .into_response(),
                Format::Csv => {
                    let id = csv_field(&sensor);
                    let lines = points.iter().map(|point| {
                        format!(
                            "{},{id},{},{}",
                            rfc3339_ms(point.timestamp),
                            point.value,
                            point.flags.names().join("|")
                        )
                    });
                    csv_response(&sensor, "timestamp,sensor_id,value,flags", lines)
                }
            };
            (response, next_from)
        }
        Some(step_seconds) => {
            let steps = Steps {
                points: points.into_iter(),
                step_ms: step_seconds * 1000,
                current: None,
            };
            let (steps, next_from) = page(steps, |row| row.ts, request.limit);
            let response = match request.format {
                Format::Json => Json(ReadingsAnswer::Downsampled(DownsampledReadings {
                    sensor_id: sensor,
                    step_seconds,
                    steps,
                    next_from,
                }))
                .into_response(),
                Format::Csv => {
                    let id = csv_field(&sensor);
                    let lines = steps.iter().map(|row| {
                        format!(
                            "{},{id},{},{},{},{}",
                            rfc3339_ms(row.ts),
                            row.min,
                            row.max,
                            row.mean,
                            row.count
                        )
                    });
                    csv_response(&sensor, "timestamp,sensor_id,min,max,mean,count", lines)
                }
            };
            (response, next_from)
        }
    };
    if let Some(link) = next_from.and_then(|next| next_link(&uri, &request, next)) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin::quality::QualityFlags;

    fn point(timestamp: i64, value: f64) -> Point {
        Point {
            timestamp,
            value,
            flags: QualityFlags::default(),
        }
    }

    #[test]
    fn pages_never_split_a_timestamp_and_never_stop_empty() {
        let times = [1, 2, 2, 2, 3, 4, 4, 5];
        for limit in 1..=times.len() + 1 {
            let mut seen = Vec::new();
            let mut from = i64::MIN;
            loop {
                let rest = times.iter().copied().filter(|&t| t >= from);
                let (rows, next) = page(rest, |&t| t, limit);
                assert!(!rows.is_empty(), "limit {limit}");
                seen.extend(rows);
                match next {
                    Some(next) => from = next,
                    None => break,
                }
            }
            assert_eq!(seen, times, "limit {limit}");
        }
    }

    #[test]
    fn steps_are_aligned_to_the_epoch_and_skip_empty_ones() {
        let points = [
            point(-1500, 4.0),
            point(-200, 2.0),
            point(0, 1.0),
            point(900, 3.0),
            point(3100, 5.0),
        ];
        let rows: Vec<_> = Steps {
            points: points.into_iter(),
            step_ms: 1000,
            current: None,
        }
        .map(|row| (row.ts, row.min, row.max, row.mean, row.count))
        .collect();
        assert_eq!(
            rows,
            vec![
                (-2000, 4.0, 4.0, 4.0, 1),
                (-1000, 2.0, 2.0, 2.0, 1),
                (0, 1.0, 3.0, 2.0, 2),
                (3000, 5.0, 5.0, 5.0, 1),
            ]
        );
    }

    #[test]
    fn times_and_fields_are_written_for_csv() {
        assert_eq!(rfc3339_ms(1_546_694_400_250), "2019-01-05T13:20:00.250Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(csv_field("P-1"), "P-1");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(file_name("a/\"b"), "a__b.csv");
    }
}
