from beta9 import inference

# Chat completion
result = inference.chat(
    model="llama3.2",
    messages=[{"role": "user", "content": "Hello!"}]
)
print(result.content)

# Simple text generation
result = inference.generate(
    model="llama3.2",
    prompt="Once upon a time"
)
print(result.content)

# Embeddings
embedding = inference.embed(
    model="nomic-embed-text",
    input="Hello world"
)
print(embedding.embedding)

# List available models
models = inference.list_models()
for m in models:
    print(f"{m.name}: {m.load_state}")
