mod calendar_files;
