"""vLLM's offline engine as a generation backend (``--backend vllm``; the ``vllm`` extra, on a
GPU machine; imported only when chosen).

Prompts go in as their exact text (``prompting.Prompt``: the chat template is applied here,
with the model's own tokenizer), so a Monte Carlo rollout continues the given steps byte for
byte. Prefix caching is on: the K rollouts of a prefix, and the prefixes of one solution,
share their KV cache, which is the saving ``backends/hf.py`` builds by hand. Each prompt's
samples are seeded by its text (``SamplingParams.row_seed``), as with every backend, so a
resumed run draws the same completions.
"""

from __future__ import annotations

from collections.abc import Sequence

from prmkit.backends.base import Completion, SamplingParams, check_outputs, prompt_texts
from prmkit.errors import InputError
from prmkit.models import load_tokenizer, model_folder


class VLLMBackend:
    def __init__(self, model: str, *, dtype: str = "auto", tensor_parallel: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None):
        try:
            import vllm
        except ImportError:
            raise InputError("the vllm backend needs vLLM (a GPU machine): pip install "
                             "'prmkit[vllm]'", field="backend") from None
        path = model_folder(model)
        self._vllm = vllm
        self.llm = vllm.LLM(model=str(path), dtype=dtype, tensor_parallel_size=tensor_parallel,
                            gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, enable_prefix_caching=True, seed=0)
        self.tokenizer = load_tokenizer(path)  # chat templates are applied on this side

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        texts = prompt_texts(prompts)
        sampling = [self._vllm.SamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p,
            max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
            seed=params.row_seed(text, 0) % (2**31),
            # only when asked for: vLLM before 0.8 refuses 0, its "off" is -1 there
            **({"top_k": params.top_k} if params.top_k else {})) for text in texts]
        results = self.llm.generate(texts, sampling, use_tqdm=False)
        outputs = [[Completion(text=o.text, num_tokens=len(o.token_ids),
                               finish_reason="length" if o.finish_reason == "length" else "stop")
                    for o in sorted(result.outputs, key=lambda o: o.index)]
                   for result in results]
        return check_outputs(prompts, params, outputs)

    def close(self) -> None:
        self.llm = None

    def __enter__(self) -> "VLLMBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
