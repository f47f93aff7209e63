use softmoe::model::Vit;
use softmoe::testing::shared_context;
use softmoe::weights::VitWeights;
use softmoe::Tensor;
fn main() {
    let c = shared_context();
    for name in ["soft-moe-vit", "dense-vit"] {
        let w = VitWeights::load(format!("weights/{name}")).unwrap();
        let vit = pollster::block_on(Vit::new(c.clone(), &w)).unwrap();
        let img = Tensor::new(vec![1, 28, 28], vec![0.5; 784]).unwrap();
        let mut runs = Vec::new();
        for _ in 0..21 {
            runs.push(pollster::block_on(vit.profile(&img)).unwrap().unwrap());
        }
        let n = runs[0].len();
        let mut total = 0.0;
        let mut line = String::new();
        for i in 0..n {
            let mut v: Vec<f64> = runs.iter().map(|r| r[i].1).collect();
            v.sort_by(f64::total_cmp);
            total += v[10];
            line += &format!("{}:{:.3} ", runs[0][i].0.trim_start_matches("gemm_"), v[10] * 1e3);
        }
        println!("{name}: {n} dispatches, sum of medians {:.3} ms\n  {line}", total * 1e3);
    }
}
