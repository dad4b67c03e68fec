//! The Rust builder gives exactly the description the TOML files give.

use host_train::model::builder::ModelBuilder;
use host_train::model::spec::{Act, ModelSpec, PadName};

const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

#[test]
fn builder_equals_the_committed_toml_models() {
    let fashion = ModelBuilder::new("fashion", [28, 28, 1])
        .classes(&FASHION_CLASSES)
        .conv(16, 5)
        .name("conv1")
        .padding(PadName::Same)
        .activation(Act::Relu)
        .max_pool(2)
        .conv(32, 5)
        .name("conv2")
        .activation(Act::Relu)
        .max_pool(2)
        .dropout(0.25)
        .flatten()
        .dense(64)
        .name("fc1")
        .activation(Act::Relu)
        .dropout(0.25)
        .dense(10)
        .name("fc2")
        .softmax()
        .build()
        .unwrap();
    let toml = ModelSpec::from_toml(include_str!("../../models/fashion/model.toml")).unwrap();
    assert_eq!(fashion, toml);

    let tiny = ModelBuilder::new("tiny", [28, 28, 1])
        .classes(&FASHION_CLASSES)
        .conv(8, 3)
        .name("conv1")
        .stride(2)
        .padding(PadName::Same)
        .activation(Act::Relu)
        .max_pool(2)
        .conv(16, 3)
        .name("conv2")
        .padding(PadName::Same)
        .activation(Act::Relu)
        .residual(|b| b.depthwise(3).padding(PadName::Same).activation(Act::Relu).pointwise(16))
        .name("res")
        .activation(Act::Relu)
        .pointwise(24)
        .name("mix")
        .activation(Act::Relu6)
        .global_avg_pool()
        .dense(10)
        .name("classifier")
        .softmax()
        .build()
        .unwrap();
    let toml = ModelSpec::from_toml(include_str!("../../models/tiny/model.toml")).unwrap();
    assert_eq!(tiny, toml);
}

#[test]
fn builder_reports_misuse_and_bad_geometry() {
    let e = ModelBuilder::new("m", [28, 28, 1]).max_pool(2).dilation(2).flatten().dense(10).build().unwrap_err();
    assert!(e.to_string().contains("`dilation` does not apply to a `maxpool` layer (layer 1)"), "{e}");
    // 7×7 input, 3×3 kernel, stride 3: (7 − 3)/3 + 1 is not whole — the same error as a file.
    let e = ModelBuilder::new("m", [7, 7, 1]).conv(4, 3).stride(3).flatten().dense(2).build().unwrap_err();
    assert!(format!("{e:#}").contains("is not a whole number"), "{e:#}");
}
