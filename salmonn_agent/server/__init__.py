"""``salmonn-agent serve``: SALMONN behind OpenAI's chat-completions and transcription APIs.

``app.create_app`` builds the FastAPI app, ``wire`` converts OpenAI's request and response
shapes, ``settings`` holds the limits, ``client`` is the CLI's standard-library client,
``ray_serve`` deploys the same app on Ray Serve with several replicas, and ``live`` (with
``ui/``, the browser page) runs the voice assistant on a browser's microphone (``serve --ui``).
"""
