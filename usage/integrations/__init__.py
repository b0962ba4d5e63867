"""Modules that run inside other programs (a LiteLLM proxy, an app using LiteLLM) and report to
this product. They import nothing of the product, so each works as a single copied file."""
