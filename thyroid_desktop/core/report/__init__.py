"""What leaves the app: the PDF report, the CSV and the audit log."""
