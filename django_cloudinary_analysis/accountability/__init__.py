"""Accountability: statements of reasons, appeals, audit export, dashboard.

Sites that moderate uploads owe the uploader an explanation and a way to
object, and owe themselves numbers. This package builds a statement of
reasons for every rejection, takes appeals, exports decisions for audit and
draws a dashboard; see docs/accountability.md.
"""
