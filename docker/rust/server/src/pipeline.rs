//! The model's pipeline facts beyond the network (docker/CONTRACT.md, "Model folder"): attention
//! mode, the Dense layers after pooling, the prompts and the Matryoshka sizes; and the two request
//! options they allow, `prompt_name` and `dimensions` ("POST /embed").

use crate::error::ApiError;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// How tokens see each other (`attention` in embbench_model.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// Every real token sees every real token (Gemma3's sliding layers: those within the window).
    Bidirectional,
    /// A token sees itself and earlier tokens.
    Causal,
}

/// The activation after a Dense layer; convert refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenseActivation {
    Identity,
}

/// One sentence-transformers Dense module: `y = activation(x · Wᵀ + b)`, `W` `[out, in]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DenseLayer {
    #[serde(rename = "in")]
    pub in_features: usize,
    #[serde(rename = "out")]
    pub out_features: usize,
    pub bias: bool,
    pub activation: DenseActivation,
    /// The module folder, relative to the model folder (`pytorch/2_Dense`): its `model.safetensors`
    /// holds `linear.weight` (and `linear.bias` when `bias`).
    pub path: String,
}

/// Prompt name → text prepended to each input, in embbench_model.json's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompts(pub Vec<(String, String)>);

impl Prompts {
    /// The text of the prompt `name`, or the contract's 422 naming the known prompts.
    pub fn text(&self, name: &str) -> Result<&str, ApiError> {
        if let Some((_, text)) = self.0.iter().find(|(n, _)| n == name) {
            return Ok(text);
        }
        let known = if self.0.is_empty() {
            "the model has no prompts".to_string()
        } else {
            let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
            format!("the model's prompts are {}", names.join(", "))
        };
        Err(ApiError::validation(format!("'prompt_name' is \"{name}\": {known}")))
    }
}

impl<'de> Deserialize<'de> for Prompts {
    /// A JSON object of strings, keeping its order (a map would sort the names).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Prompts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of prompt name -> text")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Prompts, A::Error> {
                let mut prompts = Vec::new();
                while let Some((name, text)) = map.next_entry::<String, String>()? {
                    if prompts.iter().any(|(n, _)| n == &name) {
                        return Err(serde::de::Error::custom(format!("prompt \"{name}\" is given twice")));
                    }
                    prompts.push((name, text));
                }
                Ok(Prompts(prompts))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
}

/// The output sizes the model supports (Matryoshka): `sizes`, or every size from `min` to `max`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dimensions {
    pub min: usize,
    pub max: usize,
    #[serde(default)]
    pub sizes: Option<Vec<usize>>,
}

impl Dimensions {
    /// A model without Matryoshka training: its embedding size only.
    pub fn only(dim: usize) -> Self {
        Self { min: dim, max: dim, sizes: Some(vec![dim]) }
    }

    /// Whether the fields agree with each other and with `embedding_dim`; the error names the field.
    pub fn check(&self, embedding_dim: usize) -> Result<(), String> {
        if self.max != embedding_dim {
            return Err(format!("\"dimensions\".max is {}, expected embedding_dim {embedding_dim}", self.max));
        }
        if self.min == 0 || self.min > self.max {
            return Err(format!("\"dimensions\".min is {}, expected 1 to max {}", self.min, self.max));
        }
        if let Some(sizes) = &self.sizes {
            if sizes.is_empty() {
                return Err("\"dimensions\".sizes is empty, expected the supported sizes (or no \"sizes\")".into());
            }
            if let Some(bad) = sizes.iter().find(|&&s| s < self.min || s > self.max) {
                return Err(format!("\"dimensions\".sizes holds {bad}, outside min {} to max {}", self.min, self.max));
            }
        }
        Ok(())
    }

    /// Whether `n` values per row are allowed.
    pub fn allows(&self, n: usize) -> bool {
        match &self.sizes {
            Some(sizes) => sizes.contains(&n),
            None => (self.min..=self.max).contains(&n),
        }
    }

    /// The request's `dimensions` (a JSON number) as a size, or the contract's 422 naming the allowed sizes.
    pub fn resolve(&self, requested: &serde_json::Number) -> Result<usize, ApiError> {
        if let Some(n) = requested.as_u64().and_then(|n| usize::try_from(n).ok()).filter(|&n| self.allows(n)) {
            return Ok(n);
        }
        let expected = match &self.sizes {
            Some(sizes) => {
                let mut sorted = sizes.clone();
                sorted.sort_unstable();
                sorted.dedup();
                let list: Vec<String> = sorted.iter().map(usize::to_string).collect();
                format!("expected one of {}", list.join(", "))
            }
            None => format!("expected an integer from {} to {}", self.min, self.max),
        };
        Err(ApiError::validation(format!("'dimensions' is {requested}: {expected}")))
    }
}

/// Cuts each row to its first `dim` values and L2-normalises it again (norm floored at 1e-12, as
/// torch's `normalize`); rows already `dim` long are left as they are (the backend normalised them).
pub fn truncate_rows(rows: &mut [Vec<f32>], dim: usize) {
    for row in rows.iter_mut().filter(|r| r.len() > dim) {
        row.truncate(dim);
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt().max(1e-12);
        for v in row.iter_mut() {
            *v = (f64::from(*v) / norm) as f32;
        }
    }
}

/// Checks that the Dense layers chain from the pooled size to `embedding_dim`.
pub fn check_dense(dense: &[DenseLayer], embedding_dim: usize) -> Result<(), String> {
    for (i, pair) in dense.windows(2).enumerate() {
        if pair[1].in_features != pair[0].out_features {
            return Err(format!(
                "\"dense\"[{}].in is {}, expected \"dense\"[{i}].out {}",
                i + 1,
                pair[1].in_features,
                pair[0].out_features
            ));
        }
    }
    if let Some(last) = dense.last() {
        if last.out_features != embedding_dim {
            return Err(format!(
                "\"dense\"[{}].out is {}, expected embedding_dim {embedding_dim}",
                dense.len() - 1,
                last.out_features
            ));
        }
    }
    if let Some((i, layer)) = dense.iter().enumerate().find(|(_, l)| l.in_features == 0 || l.path.is_empty()) {
        return Err(format!("\"dense\"[{i}] needs a positive \"in\" and a \"path\": {layer:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn number(text: &str) -> serde_json::Number {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn prompts_keep_their_order_and_name_the_known_ones() {
        let p: Prompts = serde_json::from_str(r#"{"query": "q: ", "document": ""}"#).unwrap();
        assert_eq!(p.text("query").unwrap(), "q: ");
        assert_eq!(p.text("document").unwrap(), "");
        let e = p.text("summary").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert_eq!(e.message, r#"'prompt_name' is "summary": the model's prompts are query, document"#);
        let none = Prompts::default();
        assert_eq!(none.text("query").unwrap_err().message, r#"'prompt_name' is "query": the model has no prompts"#);
    }

    #[test]
    fn prompts_must_be_strings_and_unique() {
        assert!(serde_json::from_str::<Prompts>(r#"{"query": 3}"#).is_err());
        assert!(serde_json::from_str::<Prompts>(r#"["query"]"#).is_err());
        let e = serde_json::from_str::<Prompts>(r#"{"q": "a", "q": "b"}"#).unwrap_err().to_string();
        assert!(e.contains("\"q\" is given twice"), "{e}");
    }

    #[test]
    fn listed_sizes_are_the_only_ones_allowed_and_named_in_order() {
        let d = Dimensions { min: 128, max: 768, sizes: Some(vec![768, 512, 256, 128]) };
        assert!(d.check(768).is_ok());
        assert_eq!(d.resolve(&number("256")).unwrap(), 256);
        for bad in ["100", "0", "-5", "128.5", "1000"] {
            let e = d.resolve(&number(bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation);
            assert_eq!(e.message, format!("'dimensions' is {bad}: expected one of 128, 256, 512, 768"));
        }
    }

    #[test]
    fn a_range_allows_every_size_within() {
        let d = Dimensions { min: 32, max: 1024, sizes: None };
        assert!(d.check(1024).is_ok());
        assert_eq!(d.resolve(&number("32")).unwrap(), 32);
        assert_eq!(d.resolve(&number("1024")).unwrap(), 1024);
        assert_eq!(d.resolve(&number("100")).unwrap(), 100);
        assert_eq!(
            d.resolve(&number("31")).unwrap_err().message,
            "'dimensions' is 31: expected an integer from 32 to 1024"
        );
        assert!(d.resolve(&number("1025")).is_err());
    }

    #[test]
    fn only_the_embedding_size_without_matryoshka() {
        let d = Dimensions::only(64);
        assert!(d.check(64).is_ok());
        assert_eq!(d.resolve(&number("64")).unwrap(), 64);
        assert_eq!(d.resolve(&number("32")).unwrap_err().message, "'dimensions' is 32: expected one of 64");
    }

    #[test]
    fn inconsistent_dimensions_are_named() {
        let bad = [
            (Dimensions { min: 8, max: 32, sizes: None }, "\"dimensions\".max is 32, expected embedding_dim 64"),
            (Dimensions { min: 0, max: 64, sizes: None }, "\"dimensions\".min is 0"),
            (Dimensions { min: 80, max: 64, sizes: None }, "\"dimensions\".min is 80"),
            (Dimensions { min: 16, max: 64, sizes: Some(vec![]) }, "\"dimensions\".sizes is empty"),
            (Dimensions { min: 16, max: 64, sizes: Some(vec![64, 8]) }, "\"dimensions\".sizes holds 8"),
        ];
        for (d, says) in bad {
            let e = d.check(64).unwrap_err();
            assert!(e.contains(says), "{d:?}: {e}");
        }
    }

    #[test]
    fn truncated_rows_are_normalised_again() {
        let mut rows = vec![vec![0.6f32, 0.0, 0.8, 0.0], vec![0.0, 0.0, 1.0, 0.0]];
        truncate_rows(&mut rows, 4);
        assert_eq!(rows[0], vec![0.6, 0.0, 0.8, 0.0], "the full size is left alone");
        truncate_rows(&mut rows, 2);
        assert_eq!(rows, vec![vec![1.0, 0.0], vec![0.0, 0.0]], "a zero row stays zero");
        let mut rows = vec![vec![3.0f32, 4.0, 12.0]];
        truncate_rows(&mut rows, 2);
        assert_eq!(rows, vec![vec![0.6, 0.8]]);
    }

    fn layer(i: usize, o: usize) -> DenseLayer {
        DenseLayer {
            in_features: i,
            out_features: o,
            bias: false,
            activation: DenseActivation::Identity,
            path: "p".into(),
        }
    }

    #[test]
    fn dense_layers_must_chain_to_the_embedding_size() {
        assert!(check_dense(&[], 64).is_ok());
        assert!(check_dense(&[layer(64, 256), layer(256, 64)], 64).is_ok());
        let e = check_dense(&[layer(64, 256), layer(128, 64)], 64).unwrap_err();
        assert!(e.contains("\"dense\"[1].in is 128, expected \"dense\"[0].out 256"), "{e}");
        let e = check_dense(&[layer(64, 256)], 64).unwrap_err();
        assert!(e.contains("\"dense\"[0].out is 256, expected embedding_dim 64"), "{e}");
    }

    #[test]
    fn dense_layers_parse_as_convert_writes_them() {
        let d: DenseLayer = serde_json::from_str(
            r#"{"in": 64, "out": 256, "bias": false, "activation": "identity", "path": "pytorch/2_Dense"}"#,
        )
        .unwrap();
        assert_eq!(d, DenseLayer { path: "pytorch/2_Dense".into(), ..layer(64, 256) });
        let e = serde_json::from_str::<DenseLayer>(
            r#"{"in": 64, "out": 256, "bias": false, "activation": "tanh", "path": "p"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tanh") && e.contains("identity"), "{e}");
    }
}
