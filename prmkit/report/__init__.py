"""Reports: terminal tables now; plots and the HTML step viewer build on the same metrics."""
