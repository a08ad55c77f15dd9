"""The request path's steps: parse and check the request, resolve the caller and the prompt,
choose a tier and a deployment, bound the cost. ``gateway/chat.py`` lists them in order, one
call each; a new stage (guards, retrieval) keeps its logic in its own package and adds one
line there."""
