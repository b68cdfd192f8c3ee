"""3D feasibility probe: can diffusers' ShapEImg2ImgPipeline be built from tiny random parts
and run to a mesh file on CPU?"""
import time, torch, sys
torch.set_num_threads(1)
from diffusers import ShapEImg2ImgPipeline, PriorTransformer, HeunDiscreteScheduler
from diffusers.pipelines.shap_e import ShapERenderer
from diffusers.utils import export_to_ply
from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPImageProcessor
from PIL import Image
torch.manual_seed(0)
emb = 16
prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=emb, num_embeddings=128,
    embedding_proj_dim=16, time_embed_dim=64, num_layers=1, clip_embed_dim=2*emb, additional_embeddings=0,
    time_embed_act_fn="gelu", norm_in_type="layer", embedding_proj_norm_type="layer", encoder_hid_proj_type=None, added_emb_type=None)
enc = CLIPVisionModel(CLIPVisionConfig(hidden_size=16, image_size=32, projection_dim=16, intermediate_size=24, num_attention_heads=2, num_channels=3, num_hidden_layers=1, patch_size=8))
proc = CLIPImageProcessor(crop_size=32, size=32, do_center_crop=True, do_normalize=True, do_resize=True, resample=3, image_mean=[0.5]*3, image_std=[0.5]*3)
renderer = ShapERenderer(param_shapes=((32, 93),(32,32),(32,32),(32,32)), d_latent=emb, d_hidden=32, n_output=12, background=(0.1,0.1,0.1))
sched = HeunDiscreteScheduler(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample", use_karras_sigmas=True, clip_sample=True, clip_sample_range=1.0)
pipe = ShapEImg2ImgPipeline(prior=prior, image_encoder=enc, image_processor=proc, shap_e_renderer=renderer, scheduler=sched)
img = Image.new("RGB", (32, 32), (200, 30, 30))
t = time.time()
try:
    out = pipe(img, num_inference_steps=2, frame_size=32, output_type="pil", generator=torch.Generator().manual_seed(0))
    print("views:", len(out.images[0]), out.images[0][0].size, f"{time.time()-t:.1f}s")
except Exception as e:
    import traceback; traceback.print_exc(limit=-3)
t = time.time()
try:
    mesh = pipe(img, num_inference_steps=2, frame_size=32, output_type="mesh", generator=torch.Generator().manual_seed(0)).images[0]
    path = export_to_ply(mesh, "/tmp/probe3d/mesh.ply")
    print("mesh:", type(mesh).__name__, "verts", tuple(mesh.verts.shape), "faces", tuple(mesh.faces.shape), path, f"{time.time()-t:.1f}s")
except Exception as e:
    print("mesh FAILED:", type(e).__name__, str(e)[:300])
