"""Graded exercises: ``python -m quanta_tissu.grade 02`` checks a learner's exercise file.

Introduced with chapter 01; each chapter adds a ``chNN`` module of checks.

Does: load the learner's file in a separate process per exercise (so a syntax error,
an exception or an endless loop costs one exercise, not the grader), compare each
function with the lib's reference on fixed random inputs, and report per exercise
how wrong it is: expected vs got shape, max abs difference and where, first wrong id.
Does not: import the course's ``exercises/`` or ``solutions/`` packages (it reads
whatever file it is given), or pass anything it has not checked: a stub always fails.
"""
