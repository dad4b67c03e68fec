//! The Rust builder gives exactly the description the TOML files give.

use host_train::model::builder::ModelBuilder;
use host_train::model::spec::{Act, ModelSpec, PadName, Task};

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

    // The U-Net segmenter: nested skip blocks.
    let mut classes = vec!["background".to_string()];
    classes.extend((0..10).map(|d| d.to_string()));
    let names: Vec<&str> = classes.iter().map(String::as_str).collect();
    let same = |b: ModelBuilder| b.padding(PadName::Same).activation(Act::Relu);
    let unet = ModelBuilder::new("segment", [96, 96, 1])
        .task(Task::Segment)
        .classes(&names)
        .conv(16, 3)
        .name("enc1")
        .stride(2)
        .padding(PadName::Same)
        .activation(Act::Relu)
        .skip(|b| {
            let b = same(b.conv(32, 3).name("enc2").stride(2))
                .skip(|b| {
                    let b = same(b.conv(48, 3).name("enc3").stride(2));
                    same(b.depthwise(3).name("ctx_dw")).pointwise(48).name("ctx_pw").activation(Act::Relu).upsample(2)
                })
                .name("s24");
            same(b.depthwise(3).name("dec2_dw")).pointwise(32).name("dec2_pw").activation(Act::Relu).upsample(2)
        })
        .name("s48");
    let unet = same(unet.depthwise(3).name("dec1_dw"))
        .pointwise(24)
        .name("dec1_pw")
        .activation(Act::Relu)
        .pointwise(11)
        .name("classes")
        .softmax()
        .build()
        .unwrap();
    let toml = ModelSpec::from_toml(include_str!("../../models/segment/model.toml")).unwrap();
    assert_eq!(unet, toml);
}

#[test]
fn builder_reports_misuse_and_bad_geometry() {
    let e = ModelBuilder::new("m", [28, 28, 1]).max_pool(2).dilation(2).flatten().dense(10).build().unwrap_err();
    assert!(e.to_string().contains("`dilation` does not apply to a `maxpool` layer (layer 1)"), "{e}");
    // 7×7 input, 3×3 kernel, stride 3: (7 − 3)/3 + 1 is not whole — the same error as a file.
    let e = ModelBuilder::new("m", [7, 7, 1]).conv(4, 3).stride(3).flatten().dense(2).build().unwrap_err();
    assert!(format!("{e:#}").contains("is not a whole number"), "{e:#}");
}
