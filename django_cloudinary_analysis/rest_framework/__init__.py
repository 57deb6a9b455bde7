"""The optional REST API (``pip install django-cloudinary-analysis[drf]``).

Import it only from the site's ``urls.py``::

    path("api/analysis/", include("django_cloudinary_analysis.rest_framework.urls"))

Sites embed tags and verdicts in their own serializers with
``serializers.AnalyzedMediaSerializerMixin``.
"""
