//! The sentence-transformers Dense modules after pooling (embbench_model.json's `dense`):
//! `y = activation(x · Wᵀ + b)`, `W` `[out, in]` from the module folder's `model.safetensors`.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use embbench_server::{DenseActivation, DenseLayer};
use std::path::Path;

/// One loaded Dense layer.
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
    activation: DenseActivation,
}

impl Dense {
    /// Loads `layer.path/model.safetensors` (relative to the model folder): `linear.weight`
    /// `[out, in]`, and `linear.bias` `[out]` when `layer.bias`.
    pub fn load(model_dir: &Path, layer: &DenseLayer, device: &Device) -> Result<Self> {
        let path = model_dir.join(&layer.path).join("model.safetensors");
        if !path.is_file() {
            bail!("{} is missing: the Dense module's weights", path.display());
        }
        // SAFETY: the model folder is mounted read-only and not modified while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, device)? };
        Self::from_vb(&vb, layer)
    }

    /// The layer from tensors named as a Dense module names them.
    pub fn from_vb(vb: &VarBuilder, layer: &DenseLayer) -> Result<Self> {
        let weight = vb.get((layer.out_features, layer.in_features), "linear.weight")?;
        let bias = if layer.bias { Some(vb.get(layer.out_features, "linear.bias")?) } else { None };
        if !layer.bias && vb.contains_tensor("linear.bias") {
            bail!("the module has linear.bias but embbench_model.json says \"bias\": false");
        }
        Ok(Self { weight, bias, activation: layer.activation })
    }

    /// `[batch, in]` → `[batch, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        Ok(match self.activation {
            DenseActivation::Identity => y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn layer(bias: bool) -> DenseLayer {
        DenseLayer {
            in_features: 2,
            out_features: 3,
            bias,
            activation: DenseActivation::Identity,
            path: "pytorch/2_Dense".into(),
        }
    }

    fn tensors(bias: bool) -> VarBuilder<'static> {
        let dev = Device::Cpu;
        let mut w = HashMap::new();
        w.insert("linear.weight".to_string(), Tensor::new(&[[1f32, 0.], [0., 2.], [1., 1.]], &dev).unwrap());
        if bias {
            w.insert("linear.bias".to_string(), Tensor::new(&[0.5f32, 0., -1.], &dev).unwrap());
        }
        VarBuilder::from_tensors(w, DType::F32, &dev)
    }

    #[test]
    fn applies_x_times_w_transposed_plus_bias() {
        let x = Tensor::new(&[[1f32, 2.], [3., -1.]], &Device::Cpu).unwrap();
        let plain = Dense::from_vb(&tensors(false), &layer(false)).unwrap();
        assert_eq!(plain.forward(&x).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1., 4., 3.], vec![3., -2., 2.]]);
        let biased = Dense::from_vb(&tensors(true), &layer(true)).unwrap();
        assert_eq!(biased.forward(&x).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1.5, 4., 2.], vec![3.5, -2., 1.]]);
    }

    #[test]
    fn shapes_and_bias_must_agree_with_the_spec() {
        let wrong = DenseLayer { in_features: 3, ..layer(false) };
        assert!(Dense::from_vb(&tensors(false), &wrong).is_err());
        assert!(Dense::from_vb(&tensors(false), &layer(true)).is_err(), "no linear.bias to load");
        let e = Dense::from_vb(&tensors(true), &layer(false)).err().unwrap().to_string();
        assert!(e.contains("\"bias\": false"), "{e}");
    }

    #[test]
    fn a_missing_module_file_is_named() {
        let e = Dense::load(Path::new("/nonexistent-model"), &layer(false), &Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("/nonexistent-model/pytorch/2_Dense/model.safetensors is missing"), "{e}");
    }
}
