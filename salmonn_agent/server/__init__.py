"""``salmonn-agent serve``: SALMONN behind OpenAI's chat-completions and transcription APIs.

``app.create_app`` builds the FastAPI app, ``wire`` converts OpenAI's request and response
shapes, ``settings`` holds the limits, ``client`` is the CLI's standard-library client, and
``ray_serve`` deploys the same app on Ray Serve with several replicas.
"""
