//! Parsing and validating `POST /embed` bodies: every rule of docker/CONTRACT.md that needs only the body.

use crate::error::{ApiError, ErrorKind};
use crate::settings::ModelSpec;
use serde_json::Value;

/// A validated embedding request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedRequest {
    /// One text per answer row, in order (a single string becomes a list of one).
    pub inputs: Vec<String>,
    /// `false`: texts over `max_seq_length` tokens are rejected instead of truncated.
    pub truncate: bool,
    /// TEI's `prompt_name`: a key of the model's prompts (checked against the model by [`EmbedRequest::options`]).
    pub prompt_name: Option<String>,
    /// TEI's `dimensions`: the Matryoshka size asked for (checked against the model likewise).
    pub dimensions: Option<serde_json::Number>,
}

/// What a request's `prompt_name` and `dimensions` resolve to for the served model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Prepended to every input before tokenization (empty: none).
    pub prompt: String,
    /// Values per answer row: `embedding_dim` unless the request asked for fewer.
    pub dimensions: usize,
}

impl EmbedRequest {
    /// Checks `prompt_name` and `dimensions` against the model: 422 naming the known prompts or the
    /// allowed sizes when the model has no such prompt or size.
    pub fn options(&self, spec: &ModelSpec) -> Result<EmbedOptions, ApiError> {
        let prompt = match &self.prompt_name {
            Some(name) => spec.prompts.text(name)?.to_string(),
            None => String::new(),
        };
        let dimensions = match &self.dimensions {
            Some(n) => spec.dimensions.resolve(n)?,
            None => spec.embedding_dim,
        };
        Ok(EmbedOptions { prompt, dimensions })
    }
}

/// Checks the `Content-Type` header: JSON only, parameters such as `charset` allowed.
pub fn check_content_type(value: Option<&str>) -> Result<(), ApiError> {
    let unsupported = |found: &str| {
        ApiError::new(ErrorKind::UnsupportedMediaType, format!("Content-Type must be application/json, got {found}"))
    };
    let Some(value) = value else { return Err(unsupported("none")) };
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(unsupported(&format!("\"{value}\"")))
    }
}

/// Parses a request body; `max_batch` is the most inputs one request may hold.
pub fn parse_embed_request(body: &[u8], max_batch: usize) -> Result<EmbedRequest, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::validation(format!("request body is not valid UTF-8: invalid byte at offset {}", e.valid_up_to()))
    })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| ApiError::validation(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::validation(format!(
            "request body must be a JSON object with \"inputs\", got {}",
            type_name(&value)
        )));
    };

    // The texts are moved out of the parsed JSON, not copied.
    let inputs = match fields.remove("inputs") {
        None => return Err(ApiError::validation("\"inputs\" is missing: expected a string or a list of strings")),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ApiError::validation("\"inputs\" is an empty list: expected 1 to MAX_BATCH strings"));
            }
            if items.len() > max_batch {
                return Err(ApiError::new(
                    ErrorKind::PayloadTooLarge,
                    format!("\"inputs\" holds {} texts, more than MAX_BATCH={max_batch}", items.len()),
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s),
                    other => Err(ApiError::validation(format!(
                        "\"inputs\"[{i}] is {}: expected a string",
                        type_name(&other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(other) => {
            return Err(ApiError::validation(format!(
                "\"inputs\" is {}: expected a string or a list of strings",
                type_name(&other)
            )))
        }
    };

    let truncate = optional_bool(fields.get("truncate"), "truncate")?.unwrap_or(true);
    if optional_bool(fields.get("normalize"), "normalize")? == Some(false) {
        return Err(ApiError::validation(
            "\"normalize\": false is not supported: the served embeddings are always L2-normalised",
        ));
    }
    let prompt_name = match fields.get("prompt_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::validation(format!("'prompt_name' is {}: expected a string", type_name(other))))
        }
    };
    let dimensions = match fields.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.clone()),
        Some(other) => {
            return Err(ApiError::validation(format!("'dimensions' is {}: expected an integer", type_name(other))))
        }
    };
    Ok(EmbedRequest { inputs, truncate, prompt_name, dimensions })
}

/// A boolean field where absent and `null` both mean "the default".
fn optional_bool(value: Option<&Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::validation(format!("\"{name}\" is {}: expected a boolean", type_name(other)))),
    }
}

/// How error messages name a JSON value's type.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EmbedRequest, ApiError> {
        parse_embed_request(body.as_bytes(), 4)
    }

    fn rejected(body: &str) -> ApiError {
        parse(body).expect_err(&format!("{body} should be rejected"))
    }

    #[test]
    fn single_string_becomes_one_row() {
        let r = parse(r#"{"inputs": "one text"}"#).unwrap();
        assert_eq!(
            r,
            EmbedRequest { inputs: vec!["one text".into()], truncate: true, prompt_name: None, dimensions: None }
        );
    }

    #[test]
    fn list_keeps_order_and_flags() {
        let r = parse(r#"{"inputs": ["a", "b", ""], "truncate": false, "normalize": true}"#).unwrap();
        assert_eq!(r.inputs, vec!["a", "b", ""]);
        assert!(!r.truncate);
    }

    #[test]
    fn empty_string_is_valid() {
        assert_eq!(parse(r#"{"inputs": ""}"#).unwrap().inputs, vec![""]);
        assert_eq!(parse(r#"{"inputs": [""]}"#).unwrap().inputs, vec![""]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let r = parse(r#"{"inputs": "x", "truncation_direction": "Right", "user": {"id": 3}}"#).unwrap();
        assert_eq!(r.inputs, vec!["x"]);
    }

    #[test]
    fn prompt_name_and_dimensions_are_read_and_null_means_default() {
        let r = parse(r#"{"inputs": "x", "prompt_name": "query", "dimensions": 128}"#).unwrap();
        assert_eq!(
            (r.prompt_name.as_deref(), r.dimensions.map(|n| n.to_string())),
            (Some("query"), Some("128".into()))
        );
        let r = parse(r#"{"inputs": "x", "prompt_name": null, "dimensions": null}"#).unwrap();
        assert_eq!((r.prompt_name, r.dimensions), (None, None));
    }

    #[test]
    fn wrong_prompt_name_and_dimensions_types_are_422() {
        for (body, says) in [
            (r#"{"inputs": "x", "prompt_name": 3}"#, "'prompt_name' is a number: expected a string"),
            (r#"{"inputs": "x", "prompt_name": ["query"]}"#, "'prompt_name' is a list"),
            (r#"{"inputs": "x", "dimensions": "128"}"#, "'dimensions' is a string: expected an integer"),
            (r#"{"inputs": "x", "dimensions": true}"#, "'dimensions' is a boolean"),
        ] {
            let e = rejected(body);
            assert_eq!(e.kind, ErrorKind::Validation, "{body}");
            assert_eq!(&e.message[..says.len().min(e.message.len())], says, "{body}");
        }
    }

    #[test]
    fn options_resolve_against_the_model() {
        let spec = crate::test_support::spec();
        let options = |body: &str| parse(body).unwrap().options(&spec);
        assert_eq!(options(r#"{"inputs": "x"}"#).unwrap(), EmbedOptions { prompt: String::new(), dimensions: 3 });
        assert_eq!(
            options(r#"{"inputs": "x", "prompt_name": "query", "dimensions": 2}"#).unwrap(),
            EmbedOptions { prompt: "b ".into(), dimensions: 2 }
        );
        assert_eq!(options(r#"{"inputs": "x", "dimensions": 3}"#).unwrap().dimensions, 3);
        let e = options(r#"{"inputs": "x", "prompt_name": "summary"}"#).unwrap_err();
        assert_eq!(e.message, r#"'prompt_name' is "summary": the model's prompts are query, document"#);
        let e = options(r#"{"inputs": "x", "dimensions": 1}"#).unwrap_err();
        assert_eq!(e.message, "'dimensions' is 1: expected one of 2, 3");
    }

    #[test]
    fn null_flags_mean_default() {
        let r = parse(r#"{"inputs": "x", "truncate": null, "normalize": null}"#).unwrap();
        assert!(r.truncate);
    }

    #[test]
    fn exactly_max_batch_is_accepted() {
        assert_eq!(parse(r#"{"inputs": ["a","b","c","d"]}"#).unwrap().inputs.len(), 4);
    }

    #[test]
    fn more_than_max_batch_is_413() {
        let e = rejected(r#"{"inputs": ["a","b","c","d","e"]}"#);
        assert_eq!(e.kind, ErrorKind::PayloadTooLarge);
        assert!(e.message.contains("5 texts") && e.message.contains("MAX_BATCH=4"), "{}", e.message);
    }

    #[test]
    fn malformed_json_is_422() {
        for body in [r#"{"inputs": "x""#, "", "not json", r#"{"inputs": "x"} trailing"#] {
            let e = rejected(body);
            assert_eq!(e.kind, ErrorKind::Validation, "{body}");
            assert!(e.message.contains("not valid JSON"), "{}", e.message);
        }
    }

    #[test]
    fn invalid_utf8_is_422() {
        let e = parse_embed_request(b"{\"inputs\": \"\xff\xfe\"}", 4).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }

    #[test]
    fn body_that_is_not_an_object_is_422() {
        for body in [r#"["a"]"#, r#""a""#, "3", "null"] {
            assert_eq!(rejected(body).kind, ErrorKind::Validation, "{body}");
        }
    }

    #[test]
    fn missing_inputs_is_422() {
        let e = rejected(r#"{"input": "typo"}"#);
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.contains("\"inputs\" is missing"), "{}", e.message);
    }

    #[test]
    fn null_inputs_is_422() {
        let e = rejected(r#"{"inputs": null}"#);
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.contains("null"), "{}", e.message);
    }

    #[test]
    fn wrong_inputs_types_are_422() {
        for body in [r#"{"inputs": 3}"#, r#"{"inputs": true}"#, r#"{"inputs": {"a": 1}}"#] {
            assert_eq!(rejected(body).kind, ErrorKind::Validation, "{body}");
        }
    }

    #[test]
    fn bad_list_items_are_422_and_named_by_index() {
        for (body, index, what) in [
            (r#"{"inputs": ["a", null]}"#, 1, "null"),
            (r#"{"inputs": [["nested"]]}"#, 0, "a list"),
            (r#"{"inputs": ["a", "b", 7]}"#, 2, "a number"),
            (r#"{"inputs": [{"text": "a"}]}"#, 0, "an object"),
        ] {
            let e = rejected(body);
            assert_eq!(e.kind, ErrorKind::Validation, "{body}");
            assert!(e.message.contains(&format!("\"inputs\"[{index}] is {what}")), "{}", e.message);
        }
    }

    #[test]
    fn empty_list_is_422() {
        let e = rejected(r#"{"inputs": []}"#);
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.contains("empty list"), "{}", e.message);
    }

    #[test]
    fn normalize_false_is_422() {
        let e = rejected(r#"{"inputs": "x", "normalize": false}"#);
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.contains("normalize"), "{}", e.message);
    }

    #[test]
    fn wrong_flag_types_are_422() {
        for (body, field) in [
            (r#"{"inputs": "x", "truncate": "yes"}"#, "truncate"),
            (r#"{"inputs": "x", "truncate": 1}"#, "truncate"),
            (r#"{"inputs": "x", "normalize": "true"}"#, "normalize"),
        ] {
            let e = rejected(body);
            assert_eq!(e.kind, ErrorKind::Validation, "{body}");
            assert!(e.message.contains(field), "{}", e.message);
        }
    }

    #[test]
    fn content_type_must_be_json() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        for bad in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("")] {
            let e = check_content_type(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::UnsupportedMediaType, "{bad:?}");
        }
    }
}
