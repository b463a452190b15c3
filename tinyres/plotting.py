"""Figures drawn off screen, for saving to a file (the graph, training curves, the labs' plots).

matplotlib's object API: a `Figure` with an Agg canvas of its own draws into memory whatever
backend the user's session has chosen. The other way, ``matplotlib.use("Agg")`` and pyplot, would
switch the backend of the whole process: called from a notebook or an interactive session, it
would stop the user's own figures from showing. A figure made here is not known to pyplot, so it
needs no ``plt.close`` either: it goes when the last reference to it does.

This module imports nothing of tinyres; callers import it inside the function that draws, so
that importing tinyres does not import matplotlib.
"""
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def off_screen_figure(**figure_options):
    """A new matplotlib Figure (`figure_options` as Figure takes them: figsize, ...) with an Agg
    canvas: ``fig = off_screen_figure(figsize=(6, 4)); ax = fig.subplots(); ...;
    fig.savefig(path)``."""
    figure = Figure(**figure_options)
    FigureCanvasAgg(figure)                   # figure.canvas: draws, and saves, into memory
    return figure
