"""Placeholder: routes come next."""

from fastapi import APIRouter

router = APIRouter()
